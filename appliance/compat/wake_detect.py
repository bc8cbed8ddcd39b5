"""Wake-word detection for the compatibility edges (Wyoming `detect`, Hermes hotword).

Uses the wake module's catalog, thresholds, openWakeWord feature code and microWakeWord detector
(appliance/wake/), so the same models and the same sensitivity rules apply as for Hearth's own
satellites. The wake worker's interpreters belong to its thread, so the edges share one more
OwwFeatures instance (loaded on first use) behind a lock.
"""

from __future__ import annotations

import threading

from appliance.audio.pcm import frame_to_engine
from appliance.wake.features import CHUNK_BYTES, OwwFeatures, OwwModel
from appliance.wake.models import MICRO, OWW, OWW_BASE_THRESHOLD, Catalog, MicroDetector, ModelRef, threshold
from mqtt.messages import AudioFormat, ProtocolError

REFRACTORY_MS = 1500          # one detection per spoken wake word


class CompatWake:
    def __init__(self, settings):
        self.settings = settings.wake
        self.catalog = Catalog(settings.wake)
        self._lock = threading.Lock()
        self._features: OwwFeatures | None = None
        self._models: dict[str, OwwModel] = {}

    @property
    def models(self) -> list[str]:
        default = self.catalog.default.name
        return [default] + [n for n in self.catalog.names(OWW) if n != default]

    def resolve(self, names: list[str] | None) -> list[ModelRef]:
        if not names:
            return [self.catalog.default]
        refs = []
        for name in names:
            ref = self.catalog.models.get((OWW, name)) or self.catalog.models.get((MICRO, name))
            if ref is None:
                raise ProtocolError("unknown_model", f"no wake word model '{name}' (available: {', '.join(self.models)})")
            refs.append(ref)
        return refs

    def detector(self, names: list[str] | None = None) -> "StreamDetector":
        return StreamDetector(self, self.resolve(names))

    def _step(self, state, chunk: bytes, names: list[str]) -> list[float]:
        with self._lock:
            if self._features is None:
                self._features = OwwFeatures()
            if state.get("oww") is None:
                state["oww"] = self._features.new_state()
            self._features.step([state["oww"]], [chunk])
            scores = []
            for name in names:
                if name not in self._models:
                    self._models[name] = OwwModel(name, self.catalog.models[(OWW, name)].path)
                scores.append(float(self._models[name].score([state["oww"]])[0]))
            return scores

    def close(self) -> None:
        with self._lock:
            for model in self._models.values():
                model.close()
            if self._features:
                self._features.close()


class StreamDetector:
    """One audio stream's wake-word state: feed audio, get (model name, timestamp ms) detections."""

    def __init__(self, wake: CompatWake, refs: list[ModelRef]):
        self.wake = wake
        self.refs = refs
        self.sensitivity = wake.settings.sensitivity
        self.oww_names = [r.name for r in refs if r.engine == OWW]
        self.oww_threshold = threshold(self.sensitivity, OWW_BASE_THRESHOLD)
        self.micro = [(r.name, MicroDetector(r, self.sensitivity)) for r in refs if r.engine == MICRO]
        self.reset()

    def reset(self) -> None:
        self.state: dict = {}
        self.pending = bytearray()
        self.offset_ms = 0
        self.quiet_until_ms = 0
        self.hit = False
        for _, micro in self.micro:
            micro.reset()

    def feed(self, pcm: bytes, fmt: AudioFormat | None = None) -> list[tuple[str, int]]:
        """Audio in (any supported format; engine format if `fmt` is None) -> detections."""
        self.pending.extend(frame_to_engine(pcm, fmt) if fmt is not None else pcm)
        found = []
        while len(self.pending) >= CHUNK_BYTES:
            chunk = bytes(self.pending[:CHUNK_BYTES])
            del self.pending[:CHUNK_BYTES]
            self.offset_ms += 80
            scores = list(zip(self.oww_names, self.wake._step(self.state, chunk, self.oww_names))) if self.oww_names else []
            scores += [(name, micro.score(chunk)) for name, micro in self.micro]
            for name, score in scores:
                limit = self.oww_threshold if name in self.oww_names else dict(self.micro)[name].threshold
                if score >= limit and self.offset_ms >= self.quiet_until_ms:
                    self.quiet_until_ms = self.offset_ms + REFRACTORY_MS
                    self.hit = True
                    found.append((name, self.offset_ms))
        return found

    def close(self) -> None:
        for _, micro in self.micro:
            micro.close()
