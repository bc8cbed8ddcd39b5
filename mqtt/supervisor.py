"""Keep Mosquitto running: restart it when it dies, with growing pauses while it keeps failing.

A healthy broker killed by anything comes back at once (its persistence file is checked first and
moved aside if Mosquitto cannot read it). A broker that will not start (its port taken, a broken
file system) is retried after 0.5, 1, 2, ... up to 30 s, and Hearth keeps serving its web page
meanwhile (`/health` says the broker is down). The service's MQTT client reconnects by itself and
subscribes, announces and republishes as after any broker restart.
"""

from __future__ import annotations

import logging
import threading
import time

from mqtt.broker import BrokerConfig, BrokerError, ManagedBroker

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STEADY_S = 30.0             # a broker up this long has recovered: the next failure starts at the minimum
POLL_S = 0.2


class BrokerSupervisor:
    """A ManagedBroker and the thread that restarts it."""

    def __init__(self, config: BrokerConfig, executable: str = "mosquitto", preexec=None, sink=None,
                 backoff: tuple[float, float] = (BACKOFF_MIN_S, BACKOFF_MAX_S)):
        self.broker = ManagedBroker(config, executable, preexec, sink)
        self.backoff = backoff
        self.restarts = 0                 # successful restarts after the first start
        self.failures = 0                 # failed starts in a row
        self.last_error = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()     # one of (watch thread, reload) touches the process at a time
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        """The first start raises BrokerError (the person at the command line fixes it); later ones retry."""
        self.broker.start(timeout)
        self._thread = threading.Thread(target=self._watch, name="broker-supervisor", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        return self.broker.running()

    def reload(self) -> None:
        """Re-read logins and ACL; a changed mosquitto.conf (ports, TLS, Hermes) needs a restart instead."""
        with self._lock:
            if self.broker.conf_changed():
                log.info("mosquitto.conf changed: restarting the broker")
                self.broker.stop()             # the watch thread starts it again at once
            else:
                self.broker.reload()

    def stopping(self) -> None:
        """Hearth is stopping (a signal): from now on a broker that exits is not restarted."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        self.broker.stop()

    def _watch(self) -> None:
        delay = self.backoff[0]
        up_since = time.monotonic()
        while not self._stop.wait(POLL_S):
            if self.broker.running():
                if time.monotonic() - up_since >= STEADY_S:
                    delay = self.backoff[0]
                continue
            if self._stop.is_set():       # it exited because Hearth is stopping (Ctrl-C reached it too)
                return
            pause = self._reap(up_since)
            if pause and self._stop.wait(delay):
                return
            if pause:
                delay = min(delay * 2, self.backoff[1])
            try:
                with self._lock:
                    self.broker.start()
            except BrokerError as exc:
                self.failures += 1
                self.last_error = str(exc)
                log.error("the broker did not start (attempt %d): %s; next try in %.1f s", self.failures, exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])
                continue
            self.restarts += 1
            self.failures = 0
            self.last_error = ""
            up_since = time.monotonic()
            log.info("the broker is back (restart %d)", self.restarts)

    def _reap(self, up_since: float) -> bool:
        """Collect a broker that exited; True when it ran so briefly that the next start should wait."""
        with self._lock:
            if self.broker.process is None:       # stopped on purpose (reload) or never came up
                return False
            log.error("the broker exited (status %s); restarting it", self.broker.process.returncode)
            self.broker.stop()
        return time.monotonic() - up_since < STEADY_S
