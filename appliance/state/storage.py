"""The data disk: a named error when it is full, writes that are never half done, the low-disk reserve.

Every write path turns "no space" (ENOSPC/EDQUOT from the OS, SQLITE_FULL from SQLite) into one
`DiskFull` ("data disk full: /var/lib/hearth, 0 bytes free"); each edge translates it once: a 507
with a JSON body over HTTP, an `Error` with code `disk_full` to a device, one `Error:` line on the
command line. Files are written to a temp file in the same folder, fsync'd and renamed over the old
one (then the folder is fsync'd), so a power cut or a full disk leaves the old file or the new one.

Below the reserve (`[storage] reserve_mb`) Hearth refuses what only grows the disk and can wait:
new stored utterances and firmware fetches (`LowDisk`, code `low_disk`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FULL_BYTES = 1 << 20        # under this much free space /health says the disk is full
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13


class StorageError(OSError):
    """A write refused for lack of space; `code` is the documented error code."""

    code = "storage_error"

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DiskFull(StorageError):
    code = "disk_full"


class LowDisk(StorageError):
    code = "low_disk"


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def no_space(exc: BaseException) -> bool:
    """Does this exception mean the disk (or the quota) is full?"""
    if isinstance(exc, StorageError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "database or disk is full" in str(exc)
    return False


def disk_full(data_dir: Path) -> DiskFull:
    try:
        free = free_bytes(data_dir)
    except OSError:
        free = 0
    return DiskFull(f"data disk full: {data_dir}, {free} bytes free")


@contextmanager
def translate(data_dir: Path) -> Iterator[None]:
    """Turn any "no space" error raised inside into DiskFull naming the data directory."""
    try:
        yield
    except StorageError:
        raise
    except (OSError, sqlite3.Error) as exc:
        if no_space(exc):
            raise disk_full(data_dir) from exc
        raise


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str, data_dir: Path | None = None, mode: int = 0o644) -> None:
    """Write `path` whole or not at all: temp file, fsync, rename, fsync the folder.

    A full disk raises DiskFull (naming `data_dir`, else the file's folder) and leaves the old file."""
    path = Path(path)
    body = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    with translate(data_dir or path.parent):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


class Disk:
    """The data partition as the rest of Hearth sees it: free space, the reserve, the state for /health."""

    def __init__(self, data_dir: Path, reserve_mb: Callable[[], int]):
        self.data_dir = Path(data_dir)
        self.reserve_mb = reserve_mb          # read at every use: a config change applies at once
        self.refused = 0                      # writes refused below the reserve, since start

    def free(self) -> int:
        try:
            return free_bytes(self.data_dir)
        except OSError:
            return 0

    def reserve_bytes(self) -> int:
        return max(0, self.reserve_mb()) * 2 ** 20

    def check_reserve(self, what: str) -> None:
        """Raise LowDisk (or DiskFull) when `what` should not grow the disk now."""
        free = self.free()
        if free < FULL_BYTES:
            self.refused += 1
            raise disk_full(self.data_dir)
        if free < self.reserve_bytes():
            self.refused += 1
            raise LowDisk(f"data disk low: {self.data_dir}, {free} bytes free, under the "
                          f"{self.reserve_mb()} MB reserve ([storage] reserve_mb); {what} refused until space is freed")

    def state(self) -> dict:
        free = self.free()
        full = free < FULL_BYTES
        low = free < self.reserve_bytes()
        reason = None
        if full:
            reason = f"data disk full: {self.data_dir}, {free} bytes free"
        elif low:
            reason = (f"data disk low: {self.data_dir}, {free} bytes free, under the {self.reserve_mb()} MB "
                      "reserve (new stored utterances and firmware fetches are refused)")
        return {"path": str(self.data_dir), "free_bytes": free, "reserve_bytes": self.reserve_bytes(),
                "full": full, "low": low, "refused": self.refused, "reason": reason}
