"""Test speech from three voice families (Piper, espeak-ng, Festival) and room noise.

Piper is synthesised without its random noise so a clip is the same every run; espeak-ng and
Festival's diphone voice (festvox-kallpc16k) come from Debian. Room noise is a seeded brown noise
(a fan, a fridge) around -33 dBFS, not digital silence.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from appliance.audio.pcm import Wav, read_wav, wav_bytes

RATE = 16000


def piper_wav(hearth, text: str, out: Path) -> None:
    """Piper (the service's default voice) without its random noise: the same clip every run."""
    from piper.config import SynthesisConfig
    piper = hearth.service.voices.get(None)
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(hearth.service.voices.info(None).rate)
        w.writeframes(b"".join(c.audio_int16_bytes for c in piper.synthesize(text, quiet)))


def say(hearth, voice: str, text: str) -> np.ndarray:
    """One utterance in one voice family, as 16 kHz mono int16 samples."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        if voice == "piper":
            piper_wav(hearth, text, raw)
        elif voice == "espeak":
            subprocess.run(["espeak-ng", "-v", "en-gb", "-w", str(raw), text], check=True)
        elif voice == "festival":
            subprocess.run(["text2wave", "-eval", "(voice_kal_diphone)", "-o", str(raw)], input=text.encode(), check=True)
        else:
            raise ValueError(f"no voice family {voice!r}")
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        return np.frombuffer(read_wav(str(out)).pcm, "<i2").copy()


def room(samples: int, seed: int, rms: float = 700.0) -> np.ndarray:
    """Brown room noise, seeded."""
    walk = np.cumsum(np.random.default_rng(seed).normal(0, 1, samples))
    walk -= np.convolve(walk, np.ones(400) / 400, "same")      # no DC drift
    return walk * (rms / walk.std())


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE))


def in_room(parts: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Utterances and pauses joined, with room noise under all of it."""
    dry = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    return dry + room(len(dry), seed)


def to_wav(samples: np.ndarray) -> Wav:
    return read_wav(wav_bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes(), RATE))
