"""openWakeWord for many streams at once: one melspectrogram and one embedding interpreter shared
by every stream (one copy of the weights), each stream keeping only its small rolling state
instead of the library's 10 s buffers, all streams' 80 ms chunks run in one pass on one thread (the
embedding network as one batch; the melspectrogram network per stream, as it mixes batch rows).
The windows follow pyopen-wakeword's streaming code exactly (same windows, same lag), so a stream
scores what `OpenWakeWord.process_streaming` would, up to float rounding. The embedding network
dominates: about 2.4 ms of one core per stream per 80 ms chunk, batched or not; what makes idle
streams cheap is the quiet gate (stream.py), which skips inference on a stream at its noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyopen_wakeword.openwakeword import _MODELS_DIR

from appliance.wake.tflite import Net

CHUNK_SAMPLES = 1280                # 80 ms at 16 kHz: one step of every stream
CHUNK_BYTES = CHUNK_SAMPLES * 2
MEL_SAMPLES = 1760                  # melspectrogram input window
AUDIO_KEEP = 2 * CHUNK_SAMPLES      # the window is audio[-2560:-800] of the stream, as in the library
MELS_PER_CHUNK = 8
NUM_MELS = 32
EMB_MELS = 76                       # embedding input: 76 mel frames (775 ms)
MEL_KEEP = EMB_MELS + 4             # ... taken as mels[-80:-4], as in the library
EMB_FEATURES = 96
EMB_KEEP = 32                       # embeddings kept per stream (a wake model reads its last 16)
LAG_SAMPLES = (AUDIO_KEEP - MEL_SAMPLES) + 4 * 160   # audio after the newest frame a score has seen


@dataclass
class OwwState:
    """One stream's rolling openWakeWord state."""

    audio: np.ndarray
    mels: np.ndarray
    embs: np.ndarray
    steps: int = 0
    extra: dict = field(default_factory=dict)


class OwwFeatures:
    """The shared melspectrogram + embedding networks (bundled with pyopen-wakeword)."""

    def __init__(self, models_dir: Path = _MODELS_DIR):
        self.mel = Net(Path(models_dir) / "melspectrogram.tflite", (MEL_SAMPLES,))
        self.emb = Net(Path(models_dir) / "embedding_model.tflite", (EMB_MELS, NUM_MELS, 1))
        # the library starts every stream from 8 s of silence; so do we, computed once
        silent = self._mels(np.zeros((1, MEL_SAMPLES), np.float32))[0]
        self._mels0 = np.tile(silent[:1], (MEL_KEEP, 1))
        self._emb0 = self.emb.run(self._mels0[None, :EMB_MELS, :, None])[0]

    def _mels(self, windows: np.ndarray) -> np.ndarray:
        return self.mel.run(windows).reshape(len(windows), -1, NUM_MELS) / 10 + 2

    def new_state(self) -> OwwState:
        return OwwState(audio=np.zeros(AUDIO_KEEP, np.float32), mels=self._mels0.copy(),
                        embs=np.tile(self._emb0, (EMB_KEEP, 1)))

    def step(self, states: list[OwwState], chunks: list[bytes]) -> None:
        """Advance each stream by one 80 ms chunk (16 kHz s16, CHUNK_BYTES long), all in one batch."""
        if not states:
            return
        for s, chunk in zip(states, chunks):
            s.audio[:CHUNK_SAMPLES] = s.audio[CHUNK_SAMPLES:]
            s.audio[CHUNK_SAMPLES:] = np.frombuffer(chunk, dtype="<i2")
        # the melspectrogram network is NOT batch-invariant (its log floor follows the loudest row of the
        # batch: a quiet stream's mels moved by up to 12.8 beside a loud one), so it runs per stream; it
        # costs the same as one batch. The embedding network is batch-invariant (2e-5) and is batched.
        mels = np.concatenate([self._mels(s.audio[None, :MEL_SAMPLES]) for s in states])
        for s, m in zip(states, mels):
            s.mels[:-MELS_PER_CHUNK] = s.mels[MELS_PER_CHUNK:]
            s.mels[-MELS_PER_CHUNK:] = m
        embs = self.emb.run(np.stack([s.mels[:EMB_MELS] for s in states])[..., None])
        for s, e in zip(states, embs):
            s.embs[:-1] = s.embs[1:]
            s.embs[-1] = e
            s.steps += 1

    def close(self) -> None:
        self.mel.close()
        self.emb.close()


class OwwModel:
    """One openWakeWord classifier (hey_mycroft.tflite, ...), scoring a batch of streams."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.net = Net(path)
        self.windows = self.net.item_shape[0]
        if self.net.item_shape != (self.windows, EMB_FEATURES) or self.windows > EMB_KEEP:
            raise ValueError(f"{path}: not an openWakeWord model (input {self.net.item_shape})")

    def score(self, states: list[OwwState]) -> np.ndarray:
        if not states:
            return np.empty(0, np.float32)
        return self.net.run(np.stack([s.embs[-self.windows:] for s in states]))[:, 0]

    def close(self) -> None:
        self.net.close()
