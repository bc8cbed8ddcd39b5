"""One-file backup and restore of the configuration and the registry (the SQLite database).

A backup is a gzip'd tar holding `hearth-backup.json` (format, version, time), `hearth.toml` and
`hearth.db` (a consistent copy made with SQLite's online backup), plus the newest registry
snapshots under `snapshots/<name>/` (for a person to fall back on; restore ignores them). Restore checks everything before
it touches anything: the archive, the marker, that the config parses, that the database is a
Hearth database; then writes the config and copies the database into the live one.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

from appliance import config
from appliance.snapshots import KEEP_NEWEST, Snapshots

FORMAT = "hearth-backup"
VERSION = 1
MAX_BYTES = 256 * 2 ** 20


class BackupError(ValueError):
    """The uploaded file is not a Hearth backup this version can restore; the message says why."""


def create(settings: config.Settings, db_path: Path) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "hearth.db"
        src = sqlite3.connect(db_path)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            _add(tar, "hearth-backup.json", json.dumps({"format": FORMAT, "version": VERSION,
                                                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
            _add(tar, "hearth.toml", config.to_toml(settings).encode())
            tar.add(copy, arcname="hearth.db")
            for snap in Snapshots(settings.data_dir, settings.storage.snapshot_keep_days).list()[:KEEP_NEWEST]:
                for f in sorted(snap.path.iterdir()):           # files only: no directory members
                    tar.add(f, arcname=f"snapshots/{snap.path.name}/{f.name}")
        return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def read(data: bytes, data_dir: Path) -> tuple[config.Settings, bytes]:
    """Check an uploaded backup; returns (settings, database bytes). Raises BackupError."""
    if not data:
        raise BackupError("the file is empty")
    if len(data) > MAX_BYTES:
        raise BackupError(f"the file is larger than {MAX_BYTES // 2 ** 20} MB; a Hearth backup is much smaller")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            missing = {"hearth-backup.json", "hearth.toml", "hearth.db"} - members.keys()
            if missing:
                raise BackupError(f"this archive is not a Hearth backup (missing {', '.join(sorted(missing))})")
            files = {name: tar.extractfile(members[name]).read() for name in
                     ("hearth-backup.json", "hearth.toml", "hearth.db")}
    except (tarfile.TarError, OSError, EOFError):
        raise BackupError("this is not a Hearth backup file (expected a .tar.gz made by Hearth's System page)") from None
    try:
        marker = json.loads(files["hearth-backup.json"])
    except ValueError:
        raise BackupError("the backup's hearth-backup.json is damaged") from None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise BackupError("this archive is not a Hearth backup")
    if marker.get("version") != VERSION:
        raise BackupError(f"backup format version {marker.get('version')} is not supported (this Hearth reads {VERSION})")
    try:
        settings = config.from_dict(tomllib.loads(files["hearth.toml"].decode()), data_dir)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, config.ConfigError) as exc:
        raise BackupError(f"the backup's configuration is not valid: {exc}") from None
    _check_db(files["hearth.db"])
    return settings, files["hearth.db"]


def _check_db(data: bytes) -> None:
    if not data.startswith(b"SQLite format 3\x00"):
        raise BackupError("the backup's database is not an SQLite file")
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            conn = sqlite3.connect(tmp.name)
            try:
                ok = conn.execute("pragma integrity_check").fetchone()[0]
                ids = {r[0] for r in conn.execute("select id from migrations")}
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"the backup's database is damaged ({exc})") from None
    if ok != "ok":
        raise BackupError("the backup's database failed SQLite's integrity check")
    if "core_0001_kv" not in ids:
        raise BackupError("the backup's database is not a Hearth registry")


def restore_db(data: bytes, db_path: Path) -> None:
    """Copy a checked database into the live one (SQLite's backup API: readers see old or new, never half)."""
    with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
        tmp.write(data)
        tmp.flush()
        src = sqlite3.connect(tmp.name)
        dst = sqlite3.connect(db_path, timeout=10)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()


def restore(service, data: bytes) -> dict:
    """Check, then restore config + registry into the running service. Raises BackupError."""
    from appliance import live
    settings, db = read(data, service.settings.data_dir)
    live.write(settings)
    restore_db(db, service.store.path)
    service.store.migrate()
    live.swap(service, settings)
    try:
        service.sync_broker()
    except OSError as exc:
        raise BackupError(f"restored, but the broker's logins could not be rewritten: {exc}") from None
    return {"restored": True, "restart_recommended": True}
