"""systemd's notify protocol, without a library: READY=1 once the service is up, WATCHDOG=1 while it
is healthy (the unit's WatchdogSec= restarts a Hearth that hangs), STOPPING=1 on the way out.

Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, environ=os.environ):
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        # ping at half the watchdog interval, as sd_watchdog_enabled(3) advises
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._last = 0.0

    def send(self, state: str) -> None:
        if not self.address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(state.encode(), self.address)
            except OSError:
                pass   # systemd went away; nothing to tell

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def alive(self, healthy: bool) -> None:
        """Call often; pings the watchdog at its interval, and only while healthy."""
        if self.interval is None or not healthy:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.send("WATCHDOG=1")
