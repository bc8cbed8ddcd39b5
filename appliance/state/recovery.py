"""Recovery mode: the registry is damaged beyond repair, yet the web page comes up.

When `hearth.db` cannot be opened or repaired (no good snapshot), `hearth run` starts this instead
of the service: the web page with the admin sign-in, a page that names the damaged file and the
two ways out, and `/health` answering ok=false with the reason. Nothing else runs: the broker is
not started (no device can log in: their logins live in the registry), there is no speech,
Wyoming or firmware; the device API answers 503 `recovery`.

The ways out, each of which moves the damaged file aside (never deletes it) and restarts Hearth:
- restore a one-file backup (the System page's download), checked before anything changes;
- reset: start with an empty registry (devices pair again; config and admin password stay).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

from appliance.state import backup, live

from appliance.process import restart
from appliance.state.admin import AdminPassword, first_password_note
from appliance.state.config import Settings
from appliance.state.integrity import move_aside, present
from appliance.process.metrics import Metrics
from appliance.state.storage import Disk, fsync_dir, translate

log = logging.getLogger(__name__)


class RecoveryService:
    """Stands in for Service while the registry is unusable: what the web page and the runner need."""

    mode = "recovery"

    def __init__(self, settings: Settings, damage: Exception, serve_web: Callable[["RecoveryService"], Any]):
        """`serve_web(recovery)`: the recovery page's web server, unstarted (the wiring makes it)."""
        self.settings = settings
        self.damage = damage                     # Unrepairable or store.DatabaseDamaged: .db, .problem
        self.db = damage.db
        self.started = time.time()
        self.metrics = Metrics()
        self.metrics.gauge("hearth_recovery_mode", lambda: 1)
        self.disk = Disk(settings.data_dir, lambda: self.settings.storage.reserve_mb)
        self.admin = AdminPassword(settings.data_dir)
        self.startup_notes: list[str] = []
        if note := first_password_note(self.admin):
            self.startup_notes.append(note)
        self.conn = None
        self.restart_requested = threading.Event()
        self.web = None
        self.serve_web = serve_web
        log.error("RECOVERY MODE: %s", damage)

    def reason(self) -> str:
        return f"recovery mode: {self.damage}"

    def start(self) -> None:
        self.web = self.serve_web(self)   # the recovery page (appliance/service.py recovery_service)
        self.web.start()

    def healthy(self) -> bool:
        return self.web is not None and self.web._thread.is_alive()

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None

    # the ways out
    def restore(self, upload: BinaryIO) -> dict:
        """Check a backup (streamed: appliance/state/backup.py), move the damaged registry aside, put the
        backup's in place, restart."""
        data_dir = self.settings.data_dir
        with tempfile.TemporaryDirectory(prefix="restore-", dir=data_dir) as work:
            settings, db = backup.read(upload, data_dir, Path(work))     # BackupError: nothing changed
            moved = move_aside(self.db, f"replaced by a backup in recovery mode ({self.damage.problem})") \
                if present(self.db) else None
            with translate(data_dir):            # the checked copy is on the data disk already: rename it in
                with open(db, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(db, self.db)
                fsync_dir(self.db.parent)
        live.write(settings)
        log.warning("recovery: restored a backup; the damaged registry is kept at %s; restarting", moved)
        restart.request(self)
        return {"restored": True, "moved_to": str(moved) if moved else None, "restarting": True}

    def reset(self) -> dict:
        """Move the damaged registry aside and restart with an empty one."""
        moved = move_aside(self.db, f"reset in recovery mode ({self.damage.problem})") if present(self.db) else None
        log.warning("recovery: reset to an empty registry; the damaged one is kept at %s; restarting", moved)
        restart.request(self)
        return {"reset": True, "moved_to": str(moved) if moved else None, "restarting": True}
