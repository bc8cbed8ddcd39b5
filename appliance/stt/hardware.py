"""Whether CTranslate2 sees a CUDA device (engines and the chooser ask; nothing here loads a model)."""

from __future__ import annotations

import importlib.util


def cuda_available() -> bool:
    if importlib.util.find_spec("ctranslate2") is None:
        return False
    import ctranslate2
    try:
        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # a broken CUDA runtime means CPU
        return False
