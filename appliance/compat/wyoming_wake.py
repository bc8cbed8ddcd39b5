"""Wake word over Wyoming (`detect` + audio -> `detection` / `not-detected`) with the wake module's models."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


def adapter(service):
    """The shared compat wake detector (appliance/compat/wake_detect.py), or None without a wake module."""
    if importlib.util.find_spec("appliance.wake") is None:
        return None
    existing = getattr(service, "compat_wake", None)
    if existing is None:
        from appliance.compat.wake_detect import CompatWake
        existing = service.compat_wake = CompatWake(service.settings)
        service._stoppers.append(existing.close)
    return existing
