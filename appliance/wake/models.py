"""Which wake word models exist (bundled, plus any dropped into [wake] models_dir), how a device's
sensitivity becomes a threshold, and the per-stream microWakeWord detector.

openWakeWord models are `*.tflite` classifiers over the shared embeddings (features.py);
microWakeWord models are a `*.json` config beside their `*.tflite` (pymicro-wakeword's format),
each stream running its own small streaming interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures
from pymicro_wakeword.microwakeword import _MODELS_DIR as MICRO_DIR
from pyopen_wakeword.openwakeword import _MODELS_DIR as OWW_DIR

from appliance.state.config import WakeSettings
from mqtt.messages import ProtocolError

OWW, MICRO = "openwakeword", "microwakeword"
ENGINES = (OWW, MICRO)
OWW_BASE_THRESHOLD = 0.5
_OWW_SHARED = {"melspectrogram", "embedding_model"}


class WakeModelError(ValueError):
    """The configured wake word engine or model does not exist."""


def threshold(sensitivity: float, base: float) -> float:
    """0 never triggers, 0.5 is the model's own threshold, 1 triggers on anything (piecewise linear)."""
    if sensitivity <= 0.5:
        return 1.0 - (1.0 - base) * sensitivity / 0.5
    return base * (1.0 - sensitivity) / 0.5


@dataclass(frozen=True)
class ModelRef:
    engine: str
    name: str
    path: Path                       # openWakeWord: the .tflite; microWakeWord: the .json config


class Catalog:
    """Every model a device may pick, by engine and name; extra ones come from models_dir."""

    def __init__(self, settings: WakeSettings):
        self.settings = settings
        self.models: dict[tuple[str, str], ModelRef] = {}
        for directory in (OWW_DIR, *self._extra_dirs()):
            for path in sorted(Path(directory).glob("*.tflite")):
                if path.stem not in _OWW_SHARED and not path.with_suffix(".json").exists():
                    self.models[(OWW, path.stem)] = ModelRef(OWW, path.stem, path)
        for directory in (MICRO_DIR, *self._extra_dirs()):
            for path in sorted(Path(directory).glob("*.json")):
                self.models[(MICRO, path.stem)] = ModelRef(MICRO, path.stem, path)
        self.default = self.resolve(settings.engine, settings.model, config=True)

    def _extra_dirs(self) -> list[Path]:
        if not self.settings.models_dir:
            return []
        directory = Path(self.settings.models_dir)
        if not directory.is_dir():
            raise WakeModelError(f"[wake] models_dir {directory} is not a directory")
        return [directory]

    def names(self, engine: str) -> list[str]:
        return sorted(name for (e, name) in self.models if e == engine)

    def resolve(self, engine: str | None, model: str | None, ref: str | None = None, config: bool = False) -> ModelRef:
        engine = engine or self.settings.engine
        model = model or self.settings.model
        if engine not in ENGINES:
            msg = f"wake word engine '{engine}' is not known (use {' or '.join(ENGINES)})"
            raise WakeModelError(f"[wake] {msg}") if config else ProtocolError("unknown_model", msg, ref)
        found = self.models.get((engine, model))
        if found is None:
            msg = f"{engine} has no wake word model '{model}' (available: {', '.join(self.names(engine))})"
            raise WakeModelError(f"[wake] {msg}") if config else ProtocolError("unknown_model", msg, ref)
        return found


class MicroDetector:
    """One stream's microWakeWord: its own features and streaming interpreter (both are stateful)."""

    def __init__(self, ref: ModelRef, sensitivity: float):
        self.model = MicroWakeWord.from_config(ref.path)
        self.features = MicroWakeWordFeatures()
        self.threshold = threshold(sensitivity, self.model.probability_cutoff)

    def score(self, chunk: bytes) -> float:
        """The highest probability over this chunk's 10 ms feature steps."""
        best = 0.0
        for features in self.features.process_streaming(chunk):
            prob = self.model.process_streaming_prob(features)
            best = max(best, prob or 0.0)
        return best

    def reset(self) -> None:
        self.features.reset()
        self.model.reset()

    def close(self) -> None:
        self.model.close()
