"""Chores: slow work (SQLite writes with a full sync, files, settings look-ups) off the threads that
must stay quick (paho's network thread, the audio thread), on one worker thread of its own.

`latest(key, fn, every=s)` keeps only the newest chore per key and runs a key at most once every
`s` seconds (200 connections churning on one login are one registry write a second); `run(fn)`
runs every one. A chore that raises ProtocolError has it sent to
the device it names; the queue is bounded, so a flood loses its own oldest chores first.
"""

from __future__ import annotations

import logging
import threading
import time
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
        self._pending: "OrderedDict[object, tuple[str, Callable[[], None], float]]" = OrderedDict()
        self._last: dict[object, float] = {}      # key -> when it last ran (keys with `every` only)
        self._serial = 0
        self._stop = False
        self.dropped = 0
        self.done = 0
        self._thread = threading.Thread(target=self._run, name="chores", daemon=True)
        self._thread.start()

    def latest(self, key: object, fn: Callable[[], None], device: str = "", every: float = 0.0) -> None:
        """Run fn soon, but not sooner than `every` seconds after this key last ran; a chore with the
        same key still waiting is replaced (it keeps its place)."""
        with self._cond:
            if key not in self._pending and len(self._pending) >= self.limit:
                self._pending.popitem(last=False)
                self.dropped += 1
            self._pending[key] = (device, fn, every)
            self._cond.notify()

    def run(self, fn: Callable[[], None], device: str = "") -> None:
        with self._cond:
            self._serial += 1
            serial = self._serial
        self.latest(("run", serial), fn, device)

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def _take(self) -> tuple[str, Callable[[], None]] | None:
        """The first chore that is due, waiting for one; None once stopped and done."""
        with self._cond:
            while True:
                if not self._pending:
                    if self._stop:
                        return None
                    self._cond.wait()
                    continue
                if self._stop:                      # finishing: whatever waits runs now
                    _key, (device, fn, _every) = self._pending.popitem(last=False)
                    return device, fn
                now, wait = time.monotonic(), None
                for key, (device, fn, every) in self._pending.items():
                    due = self._last[key] + every if every and key in self._last else now
                    if due <= now:
                        del self._pending[key]
                        if every:
                            if len(self._last) > self.limit:
                                self._last.clear()
                            self._last[key] = now
                        return device, fn
                    wait = due - now if wait is None else min(wait, due - now)
                self._cond.wait(wait)

    def _run(self) -> None:
        while (chore := self._take()) is not None:
            device, fn = chore
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
