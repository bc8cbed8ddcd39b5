"""The TFLite runtime that pyopen-wakeword bundles, driven directly so that one interpreter serves
many streams at once: the first input dimension is the batch, resized per batch size and kept."""

from __future__ import annotations

import ctypes as C
from pathlib import Path

import numpy as np
from pyopen_wakeword.openwakeword import _find_tensorflowlite_c
from pyopen_wakeword.wakeword import TfLiteWakeWord

BATCH_SIZES = (32, 16, 8, 4, 2, 1)       # a batch is split into these sizes (no padding, few interpreters)

_lib = None


def runtime():
    """The bundled libtensorflowlite_c with its ctypes signatures (loaded once)."""
    global _lib
    if _lib is None:
        lib = TfLiteWakeWord(_find_tensorflowlite_c()).lib
        lib.TfLiteInterpreterOptionsCreate.restype = C.c_void_p
        lib.TfLiteInterpreterOptionsSetNumThreads.argtypes = [C.c_void_p, C.c_int32]
        lib.TfLiteInterpreterOptionsSetNumThreads.restype = None
        lib.TfLiteInterpreterOptionsDelete.argtypes = [C.c_void_p]
        lib.TfLiteInterpreterOptionsDelete.restype = None
        _lib = lib
    return _lib


class Net:
    """One TFLite model; run(x) with x shaped (batch, *item_shape) float32."""

    def __init__(self, path: Path, item_shape: tuple[int, ...] | None = None):
        self.lib = runtime()
        self.path = Path(path)
        self.model = self.lib.TfLiteModelCreateFromFile(str(self.path).encode())
        if not self.model:
            raise ValueError(f"{self.path}: not a TFLite model")
        self._interpreters: dict[int, int] = {}
        if item_shape is None:             # the model's own input shape, less the batch
            probe = self.lib.TfLiteInterpreterCreate(self.model, None)
            tensor = self.lib.TfLiteInterpreterGetInputTensor(probe, C.c_int32(0))
            item_shape = tuple(self.lib.TfLiteTensorDim(tensor, i) for i in range(1, self.lib.TfLiteTensorNumDims(tensor)))
            self.lib.TfLiteInterpreterDelete(probe)
        self.item_shape = item_shape

    def _interpreter(self, batch: int):
        if batch not in self._interpreters:
            # one thread: the wake thread must leave the other cores to STT and TTS
            options = self.lib.TfLiteInterpreterOptionsCreate()
            self.lib.TfLiteInterpreterOptionsSetNumThreads(options, 1)
            it = self.lib.TfLiteInterpreterCreate(self.model, options)
            self.lib.TfLiteInterpreterOptionsDelete(options)
            shape = (batch, *self.item_shape)
            dims = (C.c_int32 * len(shape))(*shape)
            self.lib.TfLiteInterpreterResizeInputTensor(it, C.c_int32(0), dims, C.c_int32(len(shape)))
            if self.lib.TfLiteInterpreterAllocateTensors(it) != 0:
                raise ValueError(f"{self.path}: cannot run with batch {batch}")
            self._interpreters[batch] = it
        return self._interpreters[batch]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for every row of x, shaped (batch, -1)."""
        out, i = [], 0
        while i < len(x):
            size = next(b for b in BATCH_SIZES if b <= len(x) - i)
            out.append(self._invoke(self._interpreter(size), x[i:i + size]))
            i += size
        return np.concatenate(out) if out else np.empty((0, 0), np.float32)

    def _invoke(self, it, x: np.ndarray) -> np.ndarray:
        lib = self.lib
        x = np.ascontiguousarray(x, dtype=np.float32)
        inp = lib.TfLiteInterpreterGetInputTensor(it, C.c_int32(0))
        lib.TfLiteTensorCopyFromBuffer(inp, x.ctypes.data_as(C.c_void_p), C.c_size_t(x.nbytes))
        lib.TfLiteInterpreterInvoke(it)
        outp = lib.TfLiteInterpreterGetOutputTensor(it, C.c_int32(0))
        nbytes = lib.TfLiteTensorByteSize(outp)
        y = np.empty(nbytes // 4, np.float32)
        lib.TfLiteTensorCopyToBuffer(outp, y.ctypes.data_as(C.c_void_p), C.c_size_t(nbytes))
        return y.reshape(len(x), -1)

    def close(self) -> None:
        for it in self._interpreters.values():
            self.lib.TfLiteInterpreterDelete(it)
        self._interpreters.clear()
        if self.model:
            self.lib.TfLiteModelDelete(self.model)
            self.model = None
