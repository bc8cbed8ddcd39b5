"""PCM conversion: whatever format a device declared -> 16 kHz 16-bit mono, the engines' format."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np

from mqtt.messages import AudioFormat, ProtocolError

ENGINE_FORMAT = AudioFormat(16000, 2, 1)
ENGINE_BYTES_PER_S = ENGINE_FORMAT.bytes_per_second


def frame_to_engine(data: bytes, fmt: AudioFormat, ref: str | None = None) -> bytes:
    """Convert one binary frame to 16 kHz mono s16. Raises ProtocolError on a frame that does not fit."""
    frame_bytes = fmt.width * fmt.channels
    if len(data) % frame_bytes:
        raise ProtocolError("bad_audio_format",
                            f"audio frame of {len(data)} bytes is not whole {fmt.width * 8}-bit x{fmt.channels} samples", ref)
    if fmt == ENGINE_FORMAT:
        return bytes(data)
    samples = np.frombuffer(data, dtype="<i2")
    if fmt.channels == 2:
        samples = samples.reshape(-1, 2).mean(axis=1)
    if fmt.rate != ENGINE_FORMAT.rate:
        samples = resample(samples.astype(np.float32), fmt.rate, ENGINE_FORMAT.rate)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst or samples.size == 0:
        return samples
    n_out = int(round(samples.size * dst / src))
    x_old = np.arange(samples.size) / src
    x_new = np.arange(n_out) / dst
    return np.interp(x_new, x_old, samples).astype(np.float32)


def to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def level_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS (-inf..0); used to rank devices that heard the same wake word."""
    if not pcm:
        return -120.0
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) / 32768.0
    return 20 * np.log10(max(rms, 1e-6))


@dataclass(frozen=True)
class Wav:
    pcm: bytes
    format: AudioFormat

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.format.bytes_per_second


def read_wav(data: bytes | str) -> Wav:
    """Read a WAV file (path or bytes); raises ValueError with a readable message."""
    try:
        src = open(data, "rb") if isinstance(data, str) else io.BytesIO(data)
        with src, wave.open(src, "rb") as w:
            fmt = AudioFormat(w.getframerate(), w.getsampwidth(), w.getnchannels())
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file ({exc})") from None
    return Wav(pcm, fmt)


def wav_bytes(pcm: bytes, rate: int, width: int = 2, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
