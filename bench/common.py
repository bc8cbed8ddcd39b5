"""What every benchmark needs: free ports, a real `hearth run` subprocess, statistics, test speech,
and the history of every run's figures (docs/benchmarks/*.json)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEARTH = str(Path(sys.executable).with_name("hearth"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p90_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))] * 1000


@dataclass
class RunningHearth:
    proc: subprocess.Popen
    data: Path
    broker_port: int
    web_port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_hearth(extra_toml: str = "", as_installed: bool = False) -> RunningHearth:
    """`hearth run` on free loopback ports. `as_installed`: Wyoming and discovery on, as a fresh
    install has them (Wyoming on a free loopback port instead of 10300, which another run may hold)."""
    data = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    bport, wport = free_port(), free_port()
    others = (f"[wyoming]\nbind = \"127.0.0.1\"\nport = {free_port()}\n" if as_installed
              else "[wyoming]\nenabled = false\n[discovery]\nenabled = false\n")
    (data / "hearth.toml").write_text(
        f"[broker]\nbind = \"127.0.0.1\"\nport = {bport}\ntls_port = 0\n"
        f"[web]\nbind = \"127.0.0.1\"\nport = {wport}\n" + others + extra_toml)
    env = {**os.environ, "HEARTH_DATA": str(data)}
    proc = subprocess.Popen([HEARTH, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("Hearth is running"):
            return RunningHearth(proc, data, bport, wport)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("hearth run did not start")


def speech_clip(text: str, out: Path, voice, lead_ms: int = 200, tail_ms: int = 300) -> tuple[bytes, float]:
    """Piper speech, trimmed of its own silences, padded with lead/tail silence, 16 kHz mono.

    Returns (pcm, speech_end_s): the second at which speech ends inside the clip."""
    import wave
    raw = out.with_suffix(".raw.wav")
    pcm = b"".join(c.audio_int16_bytes for c in voice.synthesize(text))
    with wave.open(str(raw), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(voice.config.sample_rate)
        w.writeframes(pcm)
    trimmed = out.with_suffix(".trim.wav")
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(trimmed),
                    "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"], check=True)
    with wave.open(str(trimmed)) as w:
        speech = w.readframes(w.getnframes())
    lead = b"\0\0" * (16 * lead_ms)
    tail = b"\0\0" * (16 * tail_ms)
    return lead + speech + tail, (len(lead) + len(speech)) / 32000


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SPELLING = {"harbour": "harbor", "colour": "color", "okay": "ok"}


def _number(digits: str) -> str:
    n = int(digits)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    return digits


def normalised_words(text: str) -> list[str]:
    """Lower case, no punctuation, numbers under 100 as words ("12" = "twelve", "6th" = "six"),
    British and American spelling alike: what a listener would count as the same words."""
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text.lower().replace("%", " percent"))
    text = re.sub(r"\d+", lambda m: f" {_number(m.group())} ", text)
    text = text.replace("'s", " s").replace("'", "")
    return [_SPELLING.get(w, w) for w in "".join(c if c.isalnum() or c.isspace() else " " for c in text).split()]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(Levenshtein distance over normalised_words, words in the reference)."""
    ref, hyp = normalised_words(reference), normalised_words(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors divided by the reference length."""
    errors, words = word_errors(reference, hypothesis)
    return errors / max(1, words)


def keep_history(docs: Path, section: str, figures: dict) -> Path:
    """Write one run's figures to `docs/benchmarks/<section>-<UTC time>.json`; runs are never overwritten
    or dropped, the ones that miss a target included."""
    import psutil
    now = datetime.datetime.now(datetime.timezone.utc)
    folder = docs / "benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{section}-{now:%Y%m%dT%H%M%SZ}.json"
    machine = {"cores": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
               "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}     # other work on the machine
    path.write_text(json.dumps({"section": section, "utc": now.isoformat(timespec="seconds"), "machine": machine,
                                **figures}, indent=1) + "\n")
    return path
