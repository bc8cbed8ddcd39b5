"""Snapshots of the registry and the settings on the data partition, to restore from after damage.

One folder per snapshot, `<data>/snapshots/<UTC stamp>/`, holding `hearth.db` (a consistent copy
made with SQLite's online backup API, in rollback-journal mode so the one file is the whole
database), `hearth.toml` (the config file, when there is one) and `snapshot.json` (when, how many
devices). A snapshot is built in a hidden temp folder, every file fsync'd, then renamed into place:
a power cut leaves either no snapshot or a whole one. Snapshots older than the keep time go, but
the newest KEEP_NEWEST always stay.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.state.storage import atomic_write, fsync_dir, fsync_file, translate

log = logging.getLogger(__name__)
KEEP_NEWEST = 3
SQLITE_IOERR_SHORT_READ = 522
MAX_SNAPSHOTS = 200


@dataclass(frozen=True)
class Snapshot:
    path: Path
    created: float
    devices: int
    signature: str = ""          # what it holds in short (Integrity.signature): equal means nothing changed

    @property
    def db(self) -> Path:
        return self.path / "hearth.db"

    @property
    def config(self) -> Path:
        return self.path / "hearth.toml"


def quick_check(db: Path) -> str | None:
    """None when SQLite's quick_check passes, else what is wrong (the file is only read).

    Only damage is an answer: a file SQLite calls corrupt or not a database, or a short read of a
    truncated one. Anything else (locked, cannot open) raises: never move a good file aside for it."""
    if not db.exists():
        return f"{db} is missing"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) or 0
        if code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or code == SQLITE_IOERR_SHORT_READ \
                or type(exc) is sqlite3.DatabaseError:
            return str(exc)
        raise
    return None if rows == ["ok"] else "; ".join(rows)


def count_devices(db: Path) -> int:
    """Paired devices (revoked ones included: rows are never deleted) in a registry file; 0 if unreadable."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("select count(*) from devices_devices").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


class Snapshots:
    def __init__(self, data_dir: Path, keep_days: int):
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / "snapshots"
        self.keep_days = keep_days

    def take(self, db: Path, config: Path | None, signature: str = "") -> Snapshot:
        """Copy the live registry (and config) into a new snapshot. Raises DiskFull when it does not fit."""
        self.dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        tmp = self.dir / f".tmp-{name}"
        try:
            with translate(self.data_dir):
                tmp.mkdir()
                src = sqlite3.connect(db, timeout=10)
                dst = sqlite3.connect(tmp / "hearth.db")
                try:
                    src.backup(dst)
                    dst.execute("PRAGMA journal_mode=DELETE")     # the one file is the whole database
                    devices = dst.execute("select count(*) from devices_devices").fetchone()[0]
                finally:
                    dst.close()
                    src.close()
                fsync_file(tmp / "hearth.db")
                if config is not None and config.exists():
                    atomic_write(tmp / "hearth.toml", config.read_bytes(), self.data_dir)
                atomic_write(tmp / "snapshot.json", json.dumps({"created": now, "devices": devices, "signature": signature}), self.data_dir)
                final = self.dir / name
                tmp.rename(final)
                fsync_dir(self.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune(now)
        return Snapshot(final, now, devices, signature)

    def list(self) -> list[Snapshot]:
        """Every whole snapshot, newest first."""
        if not self.dir.exists():
            return []
        found = []
        for folder in self.dir.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                meta = json.loads((folder / "snapshot.json").read_text())
                found.append(Snapshot(folder, float(meta["created"]), int(meta["devices"]), str(meta.get("signature", ""))))
            except (OSError, ValueError, KeyError, TypeError):
                continue          # not a whole snapshot (or damaged itself): never restored from
        return sorted(found, key=lambda s: s.created, reverse=True)

    def newest_good(self) -> Snapshot | None:
        """The newest snapshot whose database passes quick_check (damaged ones are skipped and logged)."""
        for snap in self.list():
            problem = quick_check(snap.db)
            if problem is None:
                return snap
            log.error("snapshot %s is damaged too (%s); trying an older one", snap.path, problem)
        return None

    def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        cutoff = now - self.keep_days * 86400
        snaps = self.list()
        gone = [s for i, s in enumerate(snaps) if i >= KEEP_NEWEST and (s.created < cutoff or i >= MAX_SNAPSHOTS)]
        for snap in gone:
            shutil.rmtree(snap.path, ignore_errors=True)
        for stale in self.dir.glob(".tmp-*"):        # left by a power cut during a snapshot
            shutil.rmtree(stale, ignore_errors=True)
        return len(gone)

