"""Recent log lines kept in memory for the System page: a ring-buffer logging handler."""

from __future__ import annotations

import collections
import logging
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RingHandler(logging.Handler):
    def __init__(self, capacity: int = 500):
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[dict] = collections.deque(maxlen=capacity)
        self._ring_lock = threading.Lock()
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = record.getMessage()
        with self._ring_lock:
            self.lines.append({"time": record.created, "level": record.levelname, "logger": record.name,
                               "text": text})

    def recent(self, limit: int = 200, min_level: str = "INFO") -> list[dict]:
        floor = logging.getLevelName(min_level.upper())
        floor = floor if isinstance(floor, int) else logging.INFO
        with self._ring_lock:
            rows = [r for r in self.lines if logging.getLevelName(r["level"]) >= floor]
        return rows[-limit:]


def install(service) -> None:
    """Room hook (appliance/service.py install_rooms): attach one ring buffer to the root logger (once per process) as service.logs."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, RingHandler)), None)
    if handler is None:
        handler = RingHandler()
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
    service.logs = handler
    logging.getLogger("hearth").info("service started at %s", time.strftime("%Y-%m-%d %H:%M:%S"))
