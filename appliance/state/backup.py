"""One-file backup and restore of the configuration and the registry (the SQLite database).

A backup is a gzip'd tar holding `hearth-backup.json` (format, version, time), `hearth.toml` and
`hearth.db` (a consistent copy made with SQLite's online backup), plus the newest registry
snapshots under `snapshots/<name>/` (for a person to fall back on; restore ignores them). Restore checks everything before
it touches anything: the archive, the marker, that the config parses, that the database is a
Hearth database; then writes the config and copies the database into the live one.

An upload is never unpacked into memory: each tar member's declared size, the number of members
and their total are checked against MEMBERS before its bytes are read, every read of the unpacked
stream is bounded (a gzip bomb or a tar header claiming a gigabyte is refused at once), and the
database streams to a file in the data directory.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import tomllib
import zlib
from pathlib import Path
from typing import BinaryIO

from appliance.state import config
from appliance.state.snapshots import KEEP_NEWEST, Snapshots

FORMAT = "hearth-backup"
VERSION = 1
MAX_BYTES = 256 * 2 ** 20                 # the uploaded (compressed) file
MEMBERS = {"hearth-backup.json": 64 * 2 ** 10, "hearth.toml": 2 ** 20, "hearth.db": 256 * 2 ** 20}
# the newest snapshots ride along (for a person to fall back on); restore checks their sizes and skips them
SNAPSHOT_MEMBER = re.compile(r"snapshots/[0-9TZ.]{1,40}/(hearth\.db|hearth\.toml|snapshot\.json)")
SNAPSHOT_FILES = KEEP_NEWEST * 3
MAX_MEMBERS = len(MEMBERS) + SNAPSHOT_FILES + 2
MAX_UNPACKED = sum(MEMBERS.values()) * (1 + KEEP_NEWEST)
MAX_READ = 2 * 2 ** 20                    # tarfile reads headers whole: no Hearth header is near this
BLOCK_SLACK = 64 * 2 ** 10                # tar headers and padding on top of the members
COPY_CHUNK = 2 ** 20


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


class _Guard(io.RawIOBase):
    """The unpacked archive as tarfile reads it, refusing reads that only a hostile archive needs:
    one read larger than MAX_READ (a tar header claiming megabytes) or past MAX_UNPACKED in all."""

    def __init__(self, raw):
        self._raw = raw

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_READ:
            raise BackupError("the archive holds a header or block far larger than a Hearth backup has")
        if self._raw.tell() + n > MAX_UNPACKED + BLOCK_SLACK:
            raise BackupError(f"the archive unpacks to more than {MAX_UNPACKED // 2 ** 20} MB; "
                              "a Hearth backup is much smaller")
        return self._raw.read(n)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise BackupError("this archive cannot be read as a Hearth backup")
        if offset > MAX_UNPACKED + BLOCK_SLACK:
            raise BackupError(f"the archive unpacks to more than {MAX_UNPACKED // 2 ** 20} MB; "
                              "a Hearth backup is much smaller")
        return self._raw.seek(offset)


def _size(upload: BinaryIO) -> int:
    upload.seek(0, io.SEEK_END)
    size = upload.tell()
    upload.seek(0)
    return size


def read(upload: BinaryIO, data_dir: Path, work: Path) -> tuple[config.Settings, Path]:
    """Check an uploaded backup (a seekable binary file); returns (settings, path of its database,
    unpacked into `work`). Every member's declared size, their count and their total are checked
    before its bytes are read; the database streams to disk. Raises BackupError."""
    size = _size(upload)
    if not size:
        raise BackupError("the file is empty")
    if size > MAX_BYTES:
        raise BackupError(f"the file is larger than {MAX_BYTES // 2 ** 20} MB; a Hearth backup is much smaller")
    files: dict[str, bytes] = {}
    db_path = Path(work) / "hearth.db"
    try:
        with gzip.GzipFile(fileobj=upload, mode="rb") as unpacked, \
                tarfile.open(fileobj=_Guard(unpacked), mode="r:") as tar:
            _unpack(tar, files, db_path)
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        raise BackupError("this is not a Hearth backup file (expected a .tar.gz made by Hearth's System page)") from None
    missing = set(MEMBERS) - set(files) - ({"hearth.db"} if db_path.exists() else set())
    if missing:
        raise BackupError(f"this archive is not a Hearth backup (missing {', '.join(sorted(missing))})")
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
    _check_db(db_path)
    return settings, db_path


def _unpack(tar: tarfile.TarFile, files: dict[str, bytes], db_path: Path) -> None:
    total = 0
    for count, member in enumerate(_members(tar), start=1):
        if count > MAX_MEMBERS:
            raise BackupError(f"the archive holds more than {MAX_MEMBERS} entries; a Hearth backup holds {len(MEMBERS)} "
                              f"and at most {SNAPSHOT_FILES} snapshot files")
        if not member.isfile():
            raise BackupError(f"the archive holds {member.name!r}, which is not a plain file; a Hearth backup has none")
        limit = MEMBERS.get(member.name)
        snapshot = limit is None and SNAPSHOT_MEMBER.fullmatch(member.name) is not None
        if snapshot:
            limit = MEMBERS[member.name.rsplit("/", 1)[1]] if member.name.endswith((".db", ".toml")) else MEMBERS["hearth-backup.json"]
        if limit is None:
            raise BackupError(f"the archive holds {member.name!r}; a Hearth backup holds only {', '.join(MEMBERS)} "
                              "and snapshots/<time>/...")
        if member.name in files or (member.name == "hearth.db" and db_path.exists()):
            raise BackupError(f"the archive holds {member.name!r} twice")
        if member.size > limit:
            raise BackupError(f"the archive's {member.name} claims {member.size // 2 ** 20} MB, "
                              f"over the {limit // 2 ** 20 or 1} MB a Hearth backup may hold")
        total += member.size
        if total > MAX_UNPACKED:
            raise BackupError(f"the archive unpacks to more than {MAX_UNPACKED // 2 ** 20} MB")
        if snapshot:
            continue                      # checked, not unpacked: the tar reader skips its bytes
        source = tar.extractfile(member)
        if member.name == "hearth.db":
            with open(db_path, "wb") as out:
                shutil.copyfileobj(source, out, COPY_CHUNK)
        else:
            files[member.name] = source.read(limit + 1)


def _members(tar: tarfile.TarFile):
    """The members one by one, each header checked before the next is read (tar.getmembers() reads all)."""
    member = tar.next()
    while member is not None:
        yield member
        member = tar.next()


def _check_db(path: Path) -> None:
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise BackupError("the backup's database is not an SQLite file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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


def restore_db(source: Path, db_path: Path) -> None:
    """Copy a checked database into the live one (SQLite's backup API: readers see old or new, never half)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(db_path, timeout=10)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def restore(service, upload: BinaryIO) -> dict:
    """Check, then restore config + registry into the running service. Raises BackupError.

    The database is unpacked into a folder in the data directory (the disk Hearth already owns,
    never /tmp, which may be memory) and removed afterwards."""
    from appliance.state import live
    data_dir = service.settings.data_dir
    with tempfile.TemporaryDirectory(prefix="restore-", dir=data_dir) as work:
        settings, db = read(upload, data_dir, Path(work))
        live.write(settings)
        restore_db(db, service.store.path)
    service.store.migrate()
    live.swap(service, settings)
    try:
        service.sync_broker()
    except OSError as exc:
        raise BackupError(f"restored, but the broker's logins could not be rewritten: {exc}") from None
    return {"restored": True, "restart_recommended": True}
