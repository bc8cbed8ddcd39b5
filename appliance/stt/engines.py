"""Choose and load the STT engine: a pure function of config and what is installed.

`stt.model` names a model of appliance/stt/models.py or a directory; `auto` is resolved before this
(appliance/stt/choice.py). A catalogue model whose package is missing or damaged is not fatal: the
engine falls back to tiny.en and says why in `fallback` (the Voice page and /health show it), so
the box never starts without speech-to-text.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Callable
from typing import Protocol

from appliance.state.config import SttSettings
from appliance.stt.errors import SttError
from appliance.stt.hardware import cuda_available
from appliance.stt.models import CATALOGUE, TINY_EN

__all__ = ["SttError", "SttEngine", "SttStream", "cuda_available", "fallback_engine", "load_engine", "partial_engine",
           "uses_cuda"]
log = logging.getLogger(__name__)


class SttStream(Protocol):
    def accept(self, pcm: bytes) -> str: ...      # returns the partial text so far
    def finish(self) -> str: ...                  # returns the final text


class SttEngine(Protocol):
    name: str
    model: str
    streaming: bool

    def transcribe(self, pcm: bytes, language: str | None = None) -> str: ...
    def open_stream(self) -> SttStream: ...


def load_engine(settings: SttSettings) -> SttEngine:
    """Load the configured engine once; import only the chosen backend."""
    match settings.engine:
        case "faster-whisper":
            if importlib.util.find_spec("faster_whisper") is None:
                raise SttError("stt.engine is faster-whisper but the faster-whisper package is not installed")
            from appliance.stt.whisper import WhisperEngine
            try:
                engine = WhisperEngine(settings)
            except SttError as exc:
                if settings.model not in CATALOGUE or settings.model == TINY_EN:
                    raise
                log.error("%s; speech-to-text falls back to %s", exc, TINY_EN)
                engine = WhisperEngine(dataclasses.replace(settings, model=TINY_EN))
                engine.fallback = f"{exc}; running {TINY_EN} instead"
            return engine
        case "vosk":
            if importlib.util.find_spec("vosk") is None:
                raise SttError("stt.engine is vosk but the vosk package is not installed (pip install '.[vosk]')")
            from appliance.stt.vosk import VoskEngine
            return VoskEngine(settings)
        case other:
            raise SttError(f"unknown stt.engine '{other}' (use faster-whisper or vosk)")


def uses_cuda(settings: SttSettings) -> bool:
    """Whether the engine will run on CUDA (decided before it loads: Piper follows it)."""
    return settings.device == "cuda" or (settings.device == "auto" and cuda_available())


def fallback_engine(settings: SttSettings, engine: SttEngine) -> Callable[[], SttEngine] | None:
    """How to load the other model a final falls back to when the engine hears nothing in speech:
    base for tiny.en, tiny.en for anything else; None for a streaming engine or when not installed."""
    from appliance.stt.models import BASE, installed
    if engine.streaming or settings.engine != "faster-whisper":
        return None
    other = BASE if engine.model == TINY_EN else TINY_EN
    if other not in installed():
        return None
    return lambda: load_engine(dataclasses.replace(settings, model=other, partial_threads=0))


def partial_engine(settings: SttSettings, engine: SttEngine) -> Callable[[], SttEngine] | None:
    """How to load the second engine that runs partials apart (appliance/stt/decoder.py), or None:
    only faster-whisper on a CPU needs one (a GPU decodes a partial in a few ms; Vosk streams)."""
    if settings.partial_threads <= 0 or settings.partial_interval_ms <= 0 or engine.streaming:
        return None
    if getattr(engine, "device", "cpu") != "cpu":
        return None
    model = getattr(engine, "source", settings.model)       # the same model, fallback included
    return lambda: load_engine(dataclasses.replace(settings, model=model, threads=settings.partial_threads))
