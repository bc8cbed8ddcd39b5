"""The box picks its speech-to-text model: each installed model is timed on this hardware, and the
most accurate one whose end of speech -> final fits `stt.budget_ms` runs.

Hearth's final decode starts as the speech ends (the speculative final, appliance/voice/sessions.py),
so end of speech -> final is about one decode of the command: that is what is timed, on a spoken
command in room noise, a warm-up first and the median of `ROUNDS` after. Each decode counts as the
lesser of its wall-clock time and the CPU time the process used over the engine's threads, so other
work on the box at the moment of measuring (first boot, a test run) does not decide the model for
good (measured at load 4.7 on 2 cores: base 717-1382 ms wall, 293-385 ms CPU over 2 threads; quiet,
the two agree). Accuracy is the order
measured on held-out voices (appliance/stt/models.py, bench/accuracy.py), not something a box can
measure on itself without a person's words.

The choice is kept in `<data>/stt-choice.json` and measured again when the installed models or the
budget change, or when a person asks (`hearth stt measure`, the Voice page's "Measure this box").
`stt.model` set to a model name or directory overrides it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appliance.state.config import SttSettings
from appliance.stt.errors import SttError
from appliance.stt.models import CATALOGUE, TINY_EN, installed

log = logging.getLogger(__name__)

ROUNDS = 3
SLOW = 3                       # a warm-up over SLOW x the budget is the model's figure (no more rounds)
CHOICE_FILE = "stt-choice.json"
AUTO = ("", "auto")


@dataclass
class Measured:
    model: str
    decode_ms: float = 0.0             # median end of speech -> final estimate on this box
    error: str = ""                    # why it could not be timed (a damaged package)
    skipped: str = ""                  # why it was not timed (a faster model already missed the budget)


@dataclass
class Choice:
    model: str
    reason: str
    budget_ms: int
    measured: list[Measured] = field(default_factory=list)
    utc: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "Choice":
        return cls(raw["model"], raw["reason"], int(raw["budget_ms"]),
                   [Measured(**m) for m in raw.get("measured", [])], raw.get("utc", ""))


TIMING_TEXT = "Turn on the kitchen lights and set a timer for ten minutes."


def timing_clip(voice, rate: int) -> bytes:
    """A spoken command (a loaded Piper voice at `rate` Hz) in seeded room noise, 16 kHz s16 mono:
    what the box times each model on."""
    import numpy as np

    from appliance.audio.pcm import resample
    speech = np.frombuffer(b"".join(c.audio_int16_bytes for c in voice.synthesize(TIMING_TEXT)), "<i2")
    samples = resample(speech.astype(np.float32), rate, 16000)
    walk = np.cumsum(np.random.default_rng(7).normal(0, 1, samples.size + 4800))
    noise = walk - np.convolve(walk, np.ones(400) / 400, "same")
    mixed = np.concatenate([samples, np.zeros(4800)]) + noise * (700 / noise.std())
    return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_ms(engine, clip: bytes, threads: int) -> float:
    t0, c0 = time.perf_counter(), _cpu_s()
    engine.transcribe(clip)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return min(wall, cpu / max(1, threads)) * 1000


def measure(settings: SttSettings, clip: bytes, models: list[str] | None = None) -> list[Measured]:
    """Time each model on `clip` (16 kHz s16 mono), one at a time, each unloaded before the next.

    The fastest (least accurate) model goes first. Once one misses `settings.budget_ms`, the more
    accurate ones are not loaded or timed: each costs more per decode than the one before
    (tiny.en < base), so none of them could fit. On a small board or an emulated CPU that saves
    loading a 145 MB model and a decode that takes a minute, at every first start."""
    from appliance.stt.whisper import WhisperEngine
    out: list[Measured] = []
    missed = ""
    for name in sorted(models or installed(), key=_cost_order):
        if missed:
            out.append(Measured(name, skipped=f"not timed: {missed} already missed {settings.budget_ms} ms"))
            continue
        try:
            engine = WhisperEngine(dataclasses.replace(settings, model=name, partial_threads=0))
        except SttError as exc:
            out.append(Measured(name, error=str(exc)))
            continue
        warm = _timed_ms(engine, clip, settings.threads)        # first-call allocations
        if warm > SLOW * settings.budget_ms:
            # far over the budget (an emulated CPU, a small board): more rounds would not change the choice
            out.append(Measured(name, round(warm, 1)))
        else:
            out.append(Measured(name, round(statistics.median(_timed_ms(engine, clip, settings.threads)
                                                            for _ in range(ROUNDS)), 1)))
        del engine
        if out[-1].decode_ms > settings.budget_ms:
            missed = name
    return out


def _cost_order(name: str) -> int:
    """Fastest first: the least accurate known model costs least; an unknown directory goes last."""
    return -CATALOGUE[name].accuracy_rank if name in CATALOGUE else 1


def choose(measured: list[Measured], budget_ms: int) -> Choice:
    """The most accurate model within the budget; none within it: the fastest that loads."""
    usable = [m for m in measured if not m.error and not m.skipped]
    if not usable:
        return Choice(TINY_EN, "no model could be timed; running tiny.en", budget_ms, measured)
    rank = lambda m: CATALOGUE[m.model].accuracy_rank if m.model in CATALOGUE else len(CATALOGUE)
    for m in sorted(usable, key=rank):
        if m.decode_ms <= budget_ms:
            return Choice(m.model, f"the most accurate model within {budget_ms} ms "
                                   f"({m.decode_ms:.0f} ms end of speech -> final on this box)", budget_ms, measured)
    fastest = min(usable, key=lambda m: m.decode_ms)
    return Choice(fastest.model, f"no model fits {budget_ms} ms on this box; {fastest.model} is the fastest "
                                 f"({fastest.decode_ms:.0f} ms)", budget_ms, measured)


def load(data_dir: Path) -> Choice | None:
    try:
        return Choice.from_dict(json.loads((Path(data_dir) / CHOICE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(data_dir: Path, choice: Choice) -> None:
    from appliance.state.storage import atomic_write
    choice.utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write(Path(data_dir) / CHOICE_FILE, (json.dumps(choice.to_dict(), indent=1) + "\n").encode())


def current(settings: SttSettings, data_dir: Path, make_clip: Callable[[], bytes], remeasure: bool = False) -> Choice:
    """The kept choice while it still fits what is installed and the budget; else measure now.

    `make_clip` is called only when measuring: speaking the command with Piper costs about 0.2 s
    on the box's CPU but 109 s under the image tier's emulated one (measured 2026-12-07), and every
    start after the first keeps its choice."""
    kept = load(data_dir)
    have = installed()
    if (kept and not remeasure and kept.budget_ms == settings.budget_ms
            and sorted(m.model for m in kept.measured) == sorted(have)):
        return kept
    t0 = time.perf_counter()
    choice = choose(measure(settings, make_clip(), have), settings.budget_ms)
    log.info("speech-to-text: measured %s in %.1f s; %s: %s", ", ".join(f"{m.model} {m.decode_ms:.0f} ms"
             for m in choice.measured), time.perf_counter() - t0, choice.model, choice.reason)
    save(data_dir, choice)
    return choice
