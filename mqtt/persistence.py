"""Mosquitto's persistence file: can Mosquitto read it? A bad one is moved aside, never deleted.

A power cut can leave `mosquitto.db` zeroed or torn, and Mosquitto then refuses to start ("Couldn't
open database"). The 15-byte header proves little (a torn file keeps it), so the check is Mosquitto
itself: a throwaway broker, on a free loopback port, loads a copy of the file. `hearth run` and
`hearth broker` (the appliance's broker unit) run it before every start of Mosquitto.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DB_MAGIC = b"\x00\xb5\x00mosquitto db"
PROBE_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def problem(db: Path, executable: str, user: str = "", timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why Mosquitto cannot load `db`, or None when it can (or when there is no file)."""
    try:
        with db.open("rb") as fh:
            head = fh.read(len(DB_MAGIC))
    except FileNotFoundError:
        return None
    if head != DB_MAGIC:
        return "no Mosquitto header (zeroed or overwritten)"
    for stale in db.parent.glob("probe-*"):        # left by a probe that was killed with Hearth
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="probe-", dir=db.parent) as tmp:
        try:
            shutil.copyfile(db, Path(tmp) / "mosquitto.db")
        except OSError as exc:        # e.g. a full disk: the file may be fine, so leave it alone
            log.warning("could not check %s (%s); starting with it as it is", db, exc)
            return None
        conf = Path(tmp) / "probe.conf"
        conf.write_text(f"user {user or getpass.getuser()}\nallow_anonymous false\npersistence true\n"
                        f"persistence_location {tmp}/\nautosave_interval 0\nlog_dest stderr\n"
                        f"listener {_free_port()} 127.0.0.1\n")
        proc = subprocess.Popen([executable, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout, proc.kill)     # a probe that hangs counts as a failure
        killer.start()
        try:
            lines = []
            for raw in proc.stdout:           # ends when Mosquitto exits
                line = raw.decode(errors="replace").strip()
                lines.append(line)
                if line.endswith(" running"):
                    return None
            errors = [ln.split(": ", 1)[-1] for ln in lines if "Error" in ln]
            return "; ".join(errors[-2:]) or f"Mosquitto did not load it within {timeout:.0f} s"
        finally:
            killer.cancel()
            proc.kill()                       # SIGKILL: the probe writes nothing back
            proc.wait()
            proc.stdout.close()


def rescue(db: Path, executable: str, user: str = "") -> Path | None:
    """Move `db` aside when Mosquitto cannot load it; returns where it went."""
    why = problem(db, executable, user)
    if why is None:
        return None
    aside = db.with_name(f"{db.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside = aside.with_name(f"{db.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    db.rename(aside)
    log.error("Mosquitto cannot load %s (%s): moved it aside to %s; retained messages and "
              "queued sessions start empty", db, why, aside.name)
    return aside
