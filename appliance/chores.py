"""Chores: slow work (SQLite writes with a full sync, files, settings look-ups) off the threads that
must stay quick (paho's network thread, the audio thread), on one worker thread of its own.

`latest(key, fn)` keeps only the newest chore per key (200 status messages from one churning login
are one registry write); `run(fn)` runs every one. A chore that raises ProtocolError has it sent to
the device it names; the queue is bounded, so a flood loses its own oldest chores first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
MAX_CHORES = 10000


class Chores:
    def __init__(self, report: Callable[[str, ProtocolError], None], limit: int = MAX_CHORES):
        self.report = report                     # fn(device, error): the device's error topic
        self.limit = limit
        self._cond = threading.Condition()
        self._pending: "OrderedDict[object, tuple[str, Callable[[], None]]]" = OrderedDict()
        self._serial = 0
        self._stop = False
        self.dropped = 0
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="chores", daemon=True)
        self._thread.start()

    def latest(self, key: object, fn: Callable[[], None], device: str = "") -> None:
        """Run fn soon; a chore with the same key still waiting is replaced (it keeps its place)."""
        with self._cond:
            if key not in self._pending and len(self._pending) >= self.limit:
                self._pending.popitem(last=False)
                self.dropped += 1
            self._pending[key] = (device, fn)
            self._cond.notify()

    def run(self, fn: Callable[[], None], device: str = "") -> None:
        with self._cond:
            self._serial += 1
            serial = self._serial
        self.latest(("run", serial), fn, device)

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if not self._pending:
                    return
                _key, (device, fn) = self._pending.popitem(last=False)
            try:
                fn()
            except ProtocolError as exc:
                self.report(device, exc)
            except Exception:
                log.exception("background chore failed (%s)", device or "service")
            self.done += 1

    def stop(self) -> None:
        """Finish what is waiting, then end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)
