"""Restarting Hearth from the web page: `hearth run`/`serve` stop everything and re-execute themselves.

The runner gives the service a `restart_requested` event; setting it ends the run loop, the
runner stops the service and the managed broker cleanly, then replaces the process with a fresh
`hearth` with the same arguments (under systemd the unit simply sees the same process go on).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)


def supported(service) -> bool:
    return isinstance(getattr(service, "restart_requested", None), threading.Event)


def request(service, delay_s: float = 0.5) -> None:
    """Ask for a restart a moment from now, so the HTTP reply still goes out."""
    log.warning("restart requested from the web page")
    threading.Timer(delay_s, service.restart_requested.set).start()


def reexec() -> None:
    """Replace this process with a fresh `hearth` with the same arguments."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "appliance.commands.cli", *sys.argv[1:]])
