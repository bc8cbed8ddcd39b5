"""What Mosquitto says, read through a pipe: connection lines parsed in memory, the rest kept, capped.

Mosquitto logs to its stderr (`log_dest stderr`: unbuffered, where stdout would hold lines back in
a pipe), which Hearth reads. Connection lines
("New connection from ADDR on port P.", "New client connected from ADDR as ID (..., u'USER').",
"Client X disconnected, not authorised.") come as fast as anyone on the LAN can open a socket, so
they never reach a disk: they are parsed here into the listener each login last came through
(`transports.json`, one entry per login, rewritten only when one changes; the Devices page shows
TLS or plain from it) and dropped. Every other line goes to a sink: a size-capped rotating file
for `hearth run`, stdout (the journal) for `hearth broker` on the appliance.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

NEW_CONNECTION = re.compile(r"New connection from (\S+) on port (\d+)\.")
NEW_CLIENT = re.compile(r"New client connected from (\S+) as .* u'([^']+)'\)")
CHATTER = re.compile(r"New connection from |New client connected from |Client \S+ (disconnected|already connected"
                     r"|closed its connection|has exceeded timeout)|Socket error on client|OpenSSL Error")
MAX_PENDING = 1024            # sockets that said hello but have not logged in (yet, or ever)
MAX_LOGINS = 10_000
LOG_MAX_BYTES = 1 << 20       # the file sink: 1 MiB, plus two older files
LOG_BACKUPS = 2

Sink = Callable[[str], None]


class BrokerLines:
    """One consumer of Mosquitto's log lines (fed by `pump`, one thread)."""

    def __init__(self, transports: Path, sink: Sink):
        self.transports = transports
        self.sink = sink
        self._pending: OrderedDict[str, int] = OrderedDict()    # "addr:port" -> listener port
        self.ports: dict[str, int] = {}                          # login -> listener port
        self.recent: deque[str] = deque(maxlen=20)               # for error messages at start
        self.chatter = 0                                         # connection lines seen (not kept)
        self.transports.unlink(missing_ok=True)                  # a new broker: nobody is connected

    def feed(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if m := NEW_CONNECTION.search(line):
            self._pending[m.group(1)] = int(m.group(2))
            if len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
        elif m := NEW_CLIENT.search(line):
            port, user = self._pending.pop(m.group(1), None), m.group(2)
            room = user in self.ports or len(self.ports) < MAX_LOGINS
            if port is not None and self.ports.get(user) != port and room:
                self.ports[user] = port
                self._save()
        if CHATTER.search(line):
            self.chatter += 1
            return
        self.recent.append(line)
        self.sink(line)

    def _save(self) -> None:
        tmp = self.transports.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.ports))
        os.replace(tmp, self.transports)


def pump(stream: BinaryIO, lines: BrokerLines) -> threading.Thread:
    """Read `stream` to its end on a thread. It must never stop early: a full pipe stalls Mosquitto."""

    def run() -> None:
        for raw in stream:
            try:
                lines.feed(raw.decode(errors="replace"))
            except Exception:            # e.g. a full disk while saving transports.json
                log.exception("could not handle a broker log line")
        stream.close()

    thread = threading.Thread(target=run, name="broker-log", daemon=True)
    thread.start()
    return thread


def file_sink(path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> Sink:
    """Mosquitto's lines in a rotating file (at most (backups + 1) x max_bytes); errors also in
    Hearth's own log, where the System page shows them."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, delay=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    lock = threading.Lock()

    def sink(line: str) -> None:
        with lock:
            handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
        if "Error" in line:
            log.warning("mosquitto: %s", line)

    return sink


def stdout_sink(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
