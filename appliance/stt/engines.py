"""Choose and load the STT engine: a pure function of config and what is installed."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Protocol

from appliance.config import SttSettings


class SttError(RuntimeError):
    """The engine or its model cannot be used; the message says what to change."""


class SttStream(Protocol):
    def accept(self, pcm: bytes) -> str: ...      # returns the partial text so far
    def finish(self) -> str: ...                  # returns the final text


class SttEngine(Protocol):
    name: str
    model: str
    streaming: bool

    def transcribe(self, pcm: bytes, language: str | None = None) -> str: ...
    def open_stream(self) -> SttStream: ...


def cuda_available() -> bool:
    if importlib.util.find_spec("ctranslate2") is None:
        return False
    import ctranslate2
    try:
        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a broken CUDA runtime means CPU
        return False


def load_engine(settings: SttSettings) -> SttEngine:
    """Load the configured engine once; import only the chosen backend."""
    match settings.engine:
        case "faster-whisper":
            if importlib.util.find_spec("faster_whisper") is None:
                raise SttError("stt.engine is faster-whisper but the faster-whisper package is not installed")
            from appliance.stt.whisper import WhisperEngine
            return WhisperEngine(settings)
        case "vosk":
            if importlib.util.find_spec("vosk") is None:
                raise SttError("stt.engine is vosk but the vosk package is not installed (pip install '.[vosk]')")
            from appliance.stt.vosk import VoskEngine
            return VoskEngine(settings)
        case other:
            raise SttError(f"unknown stt.engine '{other}' (use faster-whisper or vosk)")


def partial_engine(settings: SttSettings, engine: SttEngine) -> Callable[[], SttEngine] | None:
    """How to load the second engine that runs partials apart (appliance/stt/decoder.py), or None:
    only faster-whisper on a CPU needs one (a GPU decodes a partial in a few ms; Vosk streams)."""
    if settings.partial_threads <= 0 or settings.partial_interval_ms <= 0 or engine.streaming:
        return None
    if getattr(engine, "device", "cpu") != "cpu":
        return None
    return lambda: load_engine(dataclasses.replace(settings, threads=settings.partial_threads))
