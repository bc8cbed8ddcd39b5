"""SQLite through one place: a connection factory with WAL on, one transaction(), migrations.

A full disk raises storage.DiskFull from any write; a file SQLite cannot read raises
DatabaseDamaged naming it (`hearth run` checks and repairs it first: appliance/state/integrity.py).

Migrations are (id, function) pairs, applied in order, each once, and recorded in the
`migrations` table. Each room keeps its migrations in its own module and lists them in
MIGRATION_MODULES; ids carry the room's prefix ("devices_0001_...") so rooms never collide.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from appliance.state.storage import translate

Migration = tuple[str, Callable[[sqlite_utils.Database], None]]

# Modules with a MIGRATIONS list, applied in this order.
MIGRATION_MODULES: list[str] = [
    "appliance.state.store",
    "appliance.devices.registry",
    "appliance.stt.vocabulary",
    "firmware_cache.registry",
]


def _core_0001(db: sqlite_utils.Database) -> None:
    db["kv"].create({"key": str, "value": str}, pk="key", if_not_exists=True)


MIGRATIONS: list[Migration] = [
    ("core_0001_kv", _core_0001),
]


class DatabaseDamaged(RuntimeError):
    """SQLite cannot use the registry file; the message names it and the way out."""

    def __init__(self, path: Path, problem: str):
        self.db, self.problem = Path(path), problem
        super().__init__(f"the registry database {path} is damaged ({problem}); start Hearth ('hearth run') to "
                         "restore the newest good snapshot, or restore a backup on the web page")


class Store:
    """The registry database. Safe to share between threads (one connection per thread)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._conns: list[sqlite3.Connection] = []      # every thread's, so close() checkpoints the WAL away
        self.after_commit: list[Callable[[], None]] = []  # told after each committed write (e.g. the snapshot debounce)
        try:
            with translate(self.path.parent):
                self.migrate()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                self.close()
                raise DatabaseDamaged(self.path, str(exc)) from exc
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is on disk before it returns. The registry changes rarely (pairing,
        # settings), and a paired device must survive the power cut that comes ten seconds later
        # (NORMAL in WAL mode leaves the last commits in the page cache; the boot test caught it).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._write_lock:
            self._conns.append(conn)
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self._connect())
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction; rolled back on any exception (a full disk raises DiskFull).
        After the commit, every `after_commit` listener is told (outside the write lock)."""
        with self._write_lock, translate(self.path.parent):
            db = self.db
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.conn.execute("COMMIT")
            except BaseException:
                if db.conn.in_transaction:        # a failed COMMIT (SQLITE_FULL) may leave it open
                    db.conn.execute("ROLLBACK")
                raise
        for listener in self.after_commit:
            listener()

    def migrate(self) -> list[str]:
        applied = []
        with self._write_lock:
            db = self.db
            db["migrations"].create({"id": str, "applied_at": float}, pk="id", if_not_exists=True)
            done = {row["id"] for row in db["migrations"].rows}
            for module_name in MIGRATION_MODULES:
                for mig_id, fn in importlib.import_module(module_name).MIGRATIONS:
                    if mig_id in done:
                        continue
                    with self.transaction() as tx:
                        fn(tx)
                        tx["migrations"].insert({"id": mig_id, "applied_at": time.time()})
                    applied.append(mig_id)
        return applied

    # a small key-value table for settings that change at run time
    def get(self, key: str, default: str | None = None) -> str | None:
        rows = list(self.db.query("select value from kv where key = ?", [key]))
        return rows[0]["value"] if rows else default

    def put(self, key: str, value: str) -> None:
        with self.transaction() as tx:
            tx["kv"].upsert({"key": key, "value": value}, pk="key")

    def close(self) -> None:
        """Close every thread's connection: the last one checkpoints the WAL into the file and removes it."""
        with self._write_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
