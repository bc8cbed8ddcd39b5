"""The registry's integrity: checked before it opens and on a schedule, restored from a snapshot.

At start, before the Store opens `hearth.db`, `prepare()` runs SQLite's quick_check. A damaged
database (zero-length with snapshots that show devices, truncated, a garbage header, corrupted
pages) is moved aside into `<data>/damaged/` with its -wal and -shm (never deleted) and the newest
snapshot that passes quick_check takes its place; that is logged, counted on /metrics
(`hearth_db_restored_total`) and shown on the Overview. With no good snapshot, `Unrepairable` is
raised and `hearth run` starts the recovery page (appliance/recovery.py) instead.

While Hearth runs, a snapshot is taken at start (when the registry or the config changed since
the newest one), `[storage] snapshot_after_s` after a change, and with a quick_check every
`[storage] check_interval_h` (apscheduler, as the firmware check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from appliance.config import Settings, config_path
from appliance.snapshots import Snapshot, Snapshots, count_devices, quick_check
from appliance.storage import atomic_write, fsync_dir, fsync_file, translate

log = logging.getLogger(__name__)
GENERATION_KEY = "devices.generation"
RECENT_S = 7 * 86400          # repairs shown on the Overview this long


class Unrepairable(RuntimeError):
    """The registry is damaged and no good snapshot exists: Hearth starts in recovery mode."""

    def __init__(self, db: Path, problem: str):
        self.db, self.problem = db, problem
        super().__init__(
            f"the registry database {db} is damaged ({problem}) and no good snapshot exists in "
            f"{db.parent / 'snapshots'}; sign in on the web page to restore a backup, or reset to an empty "
            "registry (devices then pair again)")


@dataclass(frozen=True)
class Repair:
    """One restore from a snapshot, as the Overview and the log tell it."""

    time: float
    file: str
    problem: str
    snapshot: str
    moved_to: str
    devices: int

    def describe(self) -> str:
        return (f"{self.file} was damaged ({self.problem}); moved to {self.moved_to} and restored "
                f"{self.devices} device(s) from snapshot {self.snapshot}")


SIDE_FILES = ("", "-wal", "-shm", "-journal")


def present(db: Path) -> bool:
    """The database or any of its side files is on disk (a stale -wal must never meet a restored file)."""
    return any(db.with_name(db.name + suffix).exists() for suffix in SIDE_FILES)


def move_aside(db: Path, reason: str) -> Path:
    """Move the database and its -wal/-shm into <data>/damaged/ (never deleted); returns the new path."""
    folder = db.parent / "damaged"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"{db.name}.{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{db.name}.{stamp}-{n}"
    for suffix in SIDE_FILES:
        src = db.with_name(db.name + suffix)
        if src.exists():
            os.replace(src, target.with_name(target.name + suffix))
    atomic_write(target.with_name(target.name + ".why"), reason + "\n", db.parent)
    fsync_dir(folder)
    fsync_dir(db.parent)
    log.error("moved the damaged registry %s aside to %s (%s)", db, target, reason)
    return target


class Integrity:
    def __init__(self, settings: Settings, metrics):
        self.settings = settings
        self.metrics = metrics
        self.db = settings.data_dir / "hearth.db"
        self.snapshots = Snapshots(settings.data_dir, settings.storage.snapshot_keep_days)
        self.events = settings.data_dir / "damaged" / "repairs.json"
        self.problem: str | None = None         # what the last quick_check found, None: ok
        self.last_check: float | None = None
        self.last_snapshot: Snapshot | None = None
        self.snapshot_error: str | None = None
        self._signature: str | None = None
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self._store = None
        metrics.gauge("hearth_db_ok", lambda: self.problem is None)
        metrics.gauge("hearth_snapshot_age_seconds",
                      lambda: time.time() - self.last_snapshot.created if self.last_snapshot else -1)

    # at start, before the Store opens the file
    def prepare(self) -> Repair | None:
        """Check hearth.db; restore the newest good snapshot if it is damaged or empty. Raises Unrepairable."""
        problem = quick_check(self.db) if self.db.exists() else None
        self.last_check = time.time()
        if problem is None:
            here = count_devices(self.db) if self.db.exists() else 0
            newest = self.snapshots.list()[:1]
            if here > 0 or not newest or newest[0].devices == 0:
                return None                  # healthy, or a first start, or nothing to restore
            snap = self.snapshots.newest_good()
            if snap is None or snap.devices == 0:
                return None
            what = "missing" if not self.db.exists() else \
                "zero-length" if self.db.stat().st_size == 0 else "empty"
            problem = f"{what}: no devices, while snapshot {snap.path.name} holds {snap.devices}"
        log.error("the registry database %s is damaged: %s", self.db, problem)
        snap = self.snapshots.newest_good()
        if snap is None:
            self.problem = problem
            raise Unrepairable(self.db, problem)
        return self._restore(snap, problem)

    def _restore(self, snap: Snapshot, problem: str) -> Repair:
        with translate(self.settings.data_dir):
            moved = move_aside(self.db, problem) if present(self.db) else Path("(missing)")
            tmp = self.db.with_name(f".{self.db.name}.restore")
            shutil.copyfile(snap.db, tmp)
            fsync_file(tmp)
            os.replace(tmp, self.db)
            fsync_dir(self.db.parent)
        left = quick_check(self.db)
        if left is not None:
            raise Unrepairable(self.db, f"restored from {snap.path.name}, still damaged: {left}")
        repair = Repair(time.time(), str(self.db), problem, snap.path.name, str(moved), snap.devices)
        self._record(repair)
        self.metrics.inc("hearth_db_restored_total")
        self.metrics.error(repair.time, "registry restored from a snapshot: " + repair.describe())
        log.error("registry restored: %s", repair.describe())
        return repair

    def _record(self, repair: Repair) -> None:
        kept = [r for r in self.repairs() if r.time > time.time() - 90 * 86400][-49:]
        atomic_write(self.events, json.dumps([asdict(r) for r in kept + [repair]], indent=1), self.settings.data_dir)

    def repairs(self, within_s: float | None = None) -> list[Repair]:
        try:
            rows = [Repair(**r) for r in json.loads(self.events.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        if within_s is not None:
            rows = [r for r in rows if r.time > time.time() - within_s]
        return rows

    # while running
    def start(self, store) -> None:
        self._store = store
        newest = self.snapshots.list()[:1]
        self.last_snapshot = newest[0] if newest else None
        self._signature = self.last_snapshot.signature if self.last_snapshot else None
        self.snapshot_if_changed()
        s = self.settings.storage
        # its own executor, whose every-run INFO lines stay out of the log
        logging.getLogger("apscheduler.executors.integrity").setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(daemon=True, executors={"integrity": ThreadPoolExecutor(1)})
        if s.check_interval_h > 0:
            self._scheduler.add_job(self.check_now, "interval", hours=s.check_interval_h, id="integrity-check",
                                    executor="integrity", coalesce=True, max_instances=1, misfire_grace_time=None)
        if s.snapshot_after_s > 0:
            self._scheduler.add_job(self.snapshot_if_changed, "interval", seconds=s.snapshot_after_s,
                                    id="snapshot-after-change", executor="integrity", coalesce=True,
                                    max_instances=1, misfire_grace_time=None,
                                    next_run_time=dt.datetime.now() + dt.timedelta(seconds=s.snapshot_after_s))
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def check_now(self) -> str | None:
        """quick_check the live registry; when it passes, take a snapshot. Returns the problem or None."""
        problem = quick_check(self.db)
        self.last_check = time.time()
        if problem != self.problem:
            if problem:
                log.error("the registry database %s failed quick_check: %s; restart Hearth to restore the "
                          "newest good snapshot", self.db, problem)
                self.metrics.error(time.time(), f"registry database damaged: {problem}")
            self.problem = problem
        if problem is None:
            self.snapshot(force=True)
        return problem

    def signature(self) -> str:
        """What a snapshot holds, in short: the registry's generation and the config file's bytes."""
        generation = self._store.get(GENERATION_KEY, "0") if self._store else "0"
        cfg = config_path(self.settings.data_dir)
        try:
            body = cfg.read_bytes()
        except OSError:
            body = b""
        return f"{generation}:{hashlib.sha256(body).hexdigest()[:16]}"

    def snapshot_if_changed(self) -> Snapshot | None:
        try:
            sig = self.signature()
        except Exception as exc:
            self.snapshot_error = f"cannot read the registry: {exc}"
            return None
        if sig == self._signature:
            return None
        return self.snapshot(sig)

    def snapshot(self, signature: str | None = None, force: bool = False) -> Snapshot | None:
        with self._lock:
            try:
                sig = signature or self.signature()
                snap = self.snapshots.take(self.db, config_path(self.settings.data_dir), sig)
                problem = quick_check(snap.db)
                if problem is not None:        # never keep a copy of damage
                    shutil.rmtree(snap.path, ignore_errors=True)
                    raise RuntimeError(f"the copy failed quick_check: {problem}")
            except Exception as exc:
                self.snapshot_error = str(exc)
                log.error("registry snapshot failed: %s", exc)
                self.metrics.inc("hearth_snapshot_failures_total")
                return None
            self._signature, self.last_snapshot, self.snapshot_error = sig, snap, None
            self.metrics.inc("hearth_snapshots_total")
            log.info("registry snapshot %s (%d devices)", snap.path.name, snap.devices)
            return snap

    def state(self) -> dict:
        """For /health and the Overview."""
        snap = self.last_snapshot
        return {"ok": self.problem is None, "problem": self.problem, "file": str(self.db),
                "last_check": self.last_check,
                "last_snapshot": {"name": snap.path.name, "time": snap.created, "devices": snap.devices} if snap else None,
                "snapshot_error": self.snapshot_error,
                "repairs": [asdict(r) | {"text": r.describe()} for r in self.repairs(RECENT_S)]}
