"""The registry's integrity: checked before it opens and on a schedule, restored from a snapshot.

At start, before the Store opens `hearth.db`, `prepare()` runs SQLite's quick_check. A damaged
database (zero-length with snapshots that show devices, truncated, a garbage header, corrupted
pages) is moved aside into `<data>/damaged/` with its -wal and -shm (never deleted) and the newest
snapshot that passes quick_check takes its place; that is logged, counted on /metrics
(`hearth_db_restored_total`) and shown on the Overview. With no good snapshot, `Unrepairable` is
raised and `hearth run` starts the recovery page (appliance/state/recovery.py) instead.

While Hearth runs, a snapshot is taken at start (when the registry or the config changed since
the newest one), `[storage] snapshot_after_s` (2 s) after a committed change or a config save, at
a clean stop, and with a quick_check every `[storage] check_interval_h` (apscheduler, as the
firmware check). A repair that could not bring every device back records them as lost
(appliance/state/lost.py): /health is not ok until a person acknowledges the list.
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
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from appliance.state.config import Settings, config_path
from appliance.state.lost import LostReport, broker_devices, compare
from appliance.state.snapshots import Snapshot, Snapshots, count_devices, quick_check
from appliance.state.storage import atomic_write, fsync_dir, fsync_file, translate

log = logging.getLogger(__name__)
GENERATION_KEY = "devices.generation"
RECENT_S = 7 * 86400          # repairs shown on the Overview this long
SOON = "snapshot-after-change"
RETRY_S = 30                  # a failed snapshot (a full disk) is tried again this often


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
        self.lost = LostReport(settings.data_dir)
        metrics.gauge("hearth_db_ok", lambda: self.problem is None)
        metrics.gauge("hearth_devices_lost", lambda: len(self.lost.pending_rows()))
        metrics.gauge("hearth_snapshot_age_seconds",
                      lambda: time.time() - self.last_snapshot.created if self.last_snapshot else -1)

    # at start, before the Store opens the file
    def prepare(self) -> Repair | None:
        """Check hearth.db; restore the newest good snapshot if it is damaged or empty. Raises Unrepairable.

        Devices the broker's password file (or the damaged file's readable rows) still knows but the
        registry Hearth starts with lacks are recorded as lost (appliance/state/lost.py)."""
        known, broker_problem = broker_devices(self.settings.data_dir / "broker")   # read before start rewrites them
        problem = quick_check(self.db) if self.db.exists() else None
        self.last_check = time.time()
        if problem is None:
            here = count_devices(self.db) if self.db.exists() else 0
            newest = self.snapshots.list()[:1]
            holds = newest[0].devices if newest else 0
            if here > 0 or (holds == 0 and not known and not broker_problem):
                return None                  # healthy, or a first start: nothing to restore, nothing known
            what = "missing" if not self.db.exists() else \
                "zero-length" if self.db.stat().st_size == 0 else "empty"
            problem = f"{what}: no devices, while " + (f"snapshot {newest[0].path.name} holds {holds}" if holds else
                                                       f"the broker's password file lists {len(known)} device login(s)")
        if broker_problem:                  # both named: the page, the log and /health say it
            problem += f"; the broker's password file is damaged too: {broker_problem}"
        log.error("the registry database %s is damaged: %s", self.db, problem)
        snap = self.snapshots.newest_good()
        if snap is None and problem.startswith(("missing", "zero-length", "empty")):
            repair = self._start_empty(problem)          # damage, not a new box: nothing to restore from
        elif snap is None:
            self.problem = problem
            raise Unrepairable(self.db, problem)
        else:
            repair = self._restore(snap, problem)
        moved = Path(repair.moved_to)
        lost = compare(known, moved if moved.exists() else None, self.db)
        if lost or broker_problem:
            self.lost.record(lost, repair.describe(), unchecked=broker_problem or "")
            self.metrics.error(repair.time, self.lost.state()["text"])
        return repair

    def _start_empty(self, problem: str) -> Repair:
        """A missing, zero-length or empty registry beside device logins and no snapshot: move it aside
        (never deleted) and start with a new one, so what was lost is reported, not taken for a new box."""
        with translate(self.settings.data_dir):
            moved = move_aside(self.db, problem) if present(self.db) else Path("(missing)")
        repair = Repair(time.time(), str(self.db), problem, "(none: a new, empty registry)", str(moved), 0)
        self._record(repair)
        self.metrics.inc("hearth_db_restored_total")
        log.error("registry replaced: %s", repair.describe())
        return repair

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
        logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)     # "Added job" at every change
        self._scheduler = BackgroundScheduler(daemon=True, executors={"integrity": ThreadPoolExecutor(1)})
        if s.check_interval_h > 0:
            self._scheduler.add_job(self.check_now, "interval", hours=s.check_interval_h, id="integrity-check",
                                    executor="integrity", coalesce=True, max_instances=1, misfire_grace_time=None)
        self._scheduler.start()
        store.after_commit.append(self.changed)

    def changed(self) -> None:
        """Something was written (a registry commit, a config save): a snapshot within snapshot_after_s.

        The first change arms it and later ones ride along, so a stream of changes cannot postpone it;
        a change made while it runs arms the next. snapshot_if_changed() compares the signature, so
        writes that are not the household's (presence, tokens) cost one small read."""
        if self.settings.storage.snapshot_after_s > 0:
            self._arm(self.settings.storage.snapshot_after_s)

    def _arm(self, delay: float) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        try:
            if scheduler.get_job(SOON) is None:
                scheduler.add_job(self.snapshot_if_changed, "date", id=SOON, executor="integrity",
                                  run_date=dt.datetime.now() + dt.timedelta(seconds=delay),
                                  misfire_grace_time=None, replace_existing=True)
        except SchedulerNotRunningError:      # stopping: stop() takes the last one
            pass

    def stop(self) -> None:
        """Stop the schedule (waiting for a snapshot under way), then take the one a clean stop owes."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        if self._store is not None and self.settings.storage.snapshot_after_s > 0:
            self.snapshot_if_changed()

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
                if self.settings.storage.snapshot_after_s > 0:
                    self._arm(RETRY_S)             # e.g. a full disk: tried again until it fits
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
                "lost": self.lost.state(),
                "repairs": [asdict(r) | {"text": r.describe()} for r in self.repairs(RECENT_S)]}
