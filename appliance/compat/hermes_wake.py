"""Wake word for Hermes satellites that stream audio: `hermes/hotword/<wakewordId>/detected`.

Uses the one wake-word path (appliance/wake/) when it is installed; without it Hermes
satellites keep their own wake word and everything else works.
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


def install(service, edge) -> None:
    if importlib.util.find_spec("appliance.wake") is None:
        log.info("no wake-word module: Hermes satellites use their own wake word")
        return
