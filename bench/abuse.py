"""Fair shares under attack: device B's transcript round trip, quiet and while another client floods.

For each attack (bench/attacks.py, run as its own process, as an attacker on the LAN would be):
device B streams a held-out clip (espeak-ng's voice, which Hearth was not tuned on) in real time
over MQTT, a few times quiet and then a few times under attack, in the same run; the round trip is
measured from the end of speech to B's final transcript. The attacker's own summary shows what it
was told (the documented errors). tests/abuse/ runs the same scenarios with assertions.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from appliance.commands import client
from appliance.audio.pcm import Wav, read_wav
from bench.common import ROOT, median_ms, p90_ms, word_error_rate

sys.path.insert(0, str(ROOT / "tests"))

B_TEXT = "What is the weather like tomorrow morning"    # B's held-out clip
A_TEXT = "Turn on the kitchen lights and set a timer for ten minutes."
PAD_MS = 300
ATTACKS = ["stream-flood", "churn", "wyoming-flood", "mycroft-flood"]
TITLES = {
    "stream-flood": "device A streams audio at 10x real time (new session after each refusal)",
    "churn": "200 connections on A's login reconnecting and publishing retained status (QoS 1)",
    "wyoming-flood": "20 Wyoming clients from one address, 29 s of audio each, as fast as TCP goes",
    "mycroft-flood": "8 parallel Mycroft `/v1/stt` uploads from one paired device, back to back",
}


@dataclass
class Outcome:
    attack: str
    quiet: list[float]                   # B's round trips, seconds (end of speech -> final)
    attacked: list[float]
    attacker: dict = field(default_factory=dict)     # the attack's own summary
    a: dict = field(default_factory=dict)            # the attacker's login or token
    b_errors: list[str] = field(default_factory=list)
    b_texts: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.attacked) / statistics.median(self.quiet)


def make_clip(hearth, text: str, voice: str, out: Path) -> Wav:
    """16 kHz mono speech with 200 ms lead and PAD_MS trailing silence (espeak-ng or Piper)."""
    raw = out.with_suffix(".raw.wav")
    if voice == "piper":
        pcm = b"".join(hearth.service.speaker.stream(text))
        with wave.open(str(raw), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(hearth.service.voices.info(None).rate)
            w.writeframes(pcm)
    else:
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out),
                    "pad", "0.2", f"{PAD_MS / 1000}"], check=True)
    return read_wav(str(out))


def round_trip(link, wav: Wav) -> tuple[float, str]:
    """B streams the clip in real time and ends the session; seconds from the end of speech to the
    final transcript. A ClientError (B told `unknown_session`, or no answer) propagates."""
    heard = client.transcribe(link, wav, realtime=True, timeout=30)
    return heard.latency_s + PAD_MS / 1000, heard.final.text


def attack_process(attack: str, hearth, a: dict, wav_path: Path, seconds: float) -> subprocess.Popen:
    """Start one attack (bench/attacks.py) against this Hearth, bounded by `seconds`."""
    args = [sys.executable, "-m", "bench.attacks", attack, "--seconds", str(seconds), "--wav", str(wav_path)]
    if attack in ("stream-flood", "churn"):
        creds = a["credentials"]
        # "--name=value": a password or token may begin with "-", which argparse would take for an option
        args += ["--port", str(creds.port), f"--user={creds.username}", f"--password={creds.password}"]
    elif attack == "wyoming-flood":
        args += ["--port", str(hearth.service.wyoming.port)]
    else:
        args += ["--url", hearth.web_url, f"--token={a['token']}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # at the lowest CPU priority: on a LAN the attacker is another machine, here it shares Hearth's cores
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.nice(19))


def finish(proc: subprocess.Popen) -> dict:
    """Stop an attack (SIGTERM: it prints its summary) and read what it reports."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the attack printed no summary: {err[-2000:]}")
    return json.loads(lines[-1])


def scenario(hearth, attack: str, b_link, b_wav: Wav, a: dict, a_wav_path: Path, rounds: int = 3,
             warmup_s: float = 2.0, limit_s: float = 60.0) -> Outcome:
    """B quiet `rounds` times, then the attack starts, then B `rounds` times under it."""
    out = Outcome(attack, [], [], a=a)
    for _ in range(rounds):
        seconds, text = round_trip(b_link, b_wav)
        out.quiet.append(seconds)
        out.b_texts.append(text)
    proc = attack_process(attack, hearth, a, a_wav_path, limit_s)
    try:
        time.sleep(warmup_s)
        for _ in range(rounds):
            try:
                seconds, text = round_trip(b_link, b_wav)
            except client.ClientError as exc:
                out.b_errors.append(str(exc))
                seconds, text = float("inf"), ""
            out.attacked.append(seconds)
            out.b_texts.append(text)
    finally:
        out.attacker = finish(proc)
    return out


def attackers(h, attack: str) -> dict:
    """What the attack needs: a device login (MQTT attacks), a paired device's token (Mycroft)."""
    from devices_kit import pair_device
    if attack == "churn":
        paired = pair_device(h, "Churning A")            # in the registry: presence is written for it
        return {"credentials": paired.credentials, "device": paired.id}
    if attack == "stream-flood":
        return {"credentials": h.credentials(f"flood-a-{os.getpid()}")}
    if attack == "mycroft-flood":
        paired = pair_device(h, "Uploading A")
        return {"token": paired.access, "device": paired.id}
    return {}


def run(report=None) -> str:
    from conftest import Hearth, make_settings

    tmp = Path(tempfile.mkdtemp(prefix="hearth-bench-abuse-"))
    h = Hearth(make_settings(tmp / "data", wyoming={"enabled": True})).start()
    h.service.wyoming_access.allow("127.0.0.1")     # a person allowed the Wyoming clients' address
    outcomes: list[Outcome] = []
    try:
        b_wav = make_clip(h, B_TEXT, "espeak", tmp / "b.wav")
        make_clip(h, A_TEXT, "piper", tmp / "a.wav")
        with client.DeviceLink(h.credentials("bench-b")) as b_link:
            round_trip(b_link, b_wav)                     # warm-up
            for attack in ATTACKS:
                print(f"bench: abuse {attack} ...", file=sys.stderr, flush=True)
                outcomes.append(scenario(h, attack, b_link, b_wav, attackers(h, attack), tmp / "a.wav", rounds=7))
                time.sleep(h.settings.limits.audio_cooldown_s)
    finally:
        h.stop()
    return markdown(outcomes)


def markdown(outcomes: list[Outcome]) -> str:
    def ms(values: list[float]) -> str:
        finite = [v for v in values if v != float("inf")]
        return f"{median_ms(finite):.0f} / {p90_ms(finite):.0f}" if finite else "none"

    rows = []
    for o in outcomes:
        ratio = o.ratio
        verdict = "met" if ratio <= 2.0 and not o.b_errors else "missed"
        told = ", ".join(f"`{k}` x{v}" for k, v in sorted((o.attacker.get("errors") or {}).items())) or "-"
        if o.attack == "mycroft-flood":
            told += " (HTTP " + ", ".join(f"{k} x{v}" for k, v in sorted(o.attacker.get("statuses", {}).items())) + ")"
        if o.attack == "churn":
            told = f"{o.attacker.get('connects', 0)} connects, {o.attacker.get('status_publishes', 0)} status messages"
        rows.append(f"| {TITLES[o.attack]} | {ms(o.quiet)} | {ms(o.attacked)} | {ratio:.2f}x | "
                    f"<= 2x, no error to B: {verdict} | {told} |")
    wer = statistics.mean(word_error_rate(B_TEXT, t) for o in outcomes for t in o.b_texts if t) if outcomes else 0.0
    n = len(outcomes[0].quiet) if outcomes else 0
    lines = [
        "## Fair shares under attack",
        "",
        f"Device B streams a held-out clip (espeak-ng, \"{B_TEXT}\", 2.6 s) in real time over MQTT, {n} times quiet "
        f"and then {n} times while one attack runs from its own process, in the same run against one in-process "
        "Hearth (its own Mosquitto, the real engines, Wyoming on). The round trip runs from the end of speech to B's "
        "final transcript (median / p90, ms); the ratio compares the medians. The last column is what the attacker "
        "was told. The attacker runs at the lowest CPU priority (on a LAN it is another machine; here it shares "
        "Hearth's cores). Default limits: 1.5x real time after a 2 s burst and a 5 s cooldown, 2 sessions and "
        "4 queued decodes per client, lanes served in turn. Before this work (the issue's own figures) the "
        "10x stream pushed B from ~1 s to 9-21 s, and the Wyoming flood left B with no transcript in 30 s.",
        "",
        "| attack | B quiet | B under attack | ratio | target | attacker got |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"B's word error rate, mean over every round: {wer:.2f}. B errors under attack: "
        + ("; ".join(e for o in outcomes for e in o.b_errors) or "none") + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
