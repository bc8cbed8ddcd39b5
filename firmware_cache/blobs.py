"""The content-addressed file store under `<data_dir>/firmware/`.

    objects/<aa>/<sha256>     verified images, read-only, named by their hash
    partial/<sha256>.part     an upstream download in progress (never served)
    partial/<sha256>.json     its checkpoint: bytes known to be on disk (fsynced), ETag

A file enters objects/ only by `commit`: fsync, then an atomic rename, then fsync of the
directory, after its hash was checked. So everything under objects/ is verified, and a crash
leaves either the old state or the new one.

Whoever writes a partial file holds an flock on it (`writing`), in every process: a second
process (the service and a command, or two commands) waits, then finds the verified object the
first one committed, or resumes from its checkpoint. The kernel drops the lock of a process that
dies, kill -9 included. The partial file is never replaced while locked (only truncated), so the
lock and the file stay one inode; a holder that deletes it leaves at once, and a waiter that finds
its locked inode gone from the folder tries again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.state.storage import fsync_dir
from firmware_cache.errors import QuotaError


@dataclass(frozen=True)
class Checkpoint:
    offset: int = 0          # bytes of the partial file known to be durable
    etag: str = ""           # upstream validator for If-Range
    url: str = ""


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.partials = self.root / "partial"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.partials.mkdir(parents=True, exist_ok=True)
        self.reserve = lambda: 0     # bytes a fetch must leave free: [storage] reserve_mb (firmware_cache/room.py)

    # verified objects
    def path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def objects_sizes(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in self.objects.glob("*/*") if p.is_file()}

    def commit(self, sha256: str, source: Path) -> Path:
        """Move a checked file into place atomically (same filesystem)."""
        target = self.path(sha256)
        target.parent.mkdir(exist_ok=True)
        with source.open("rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(source, 0o444)
        os.replace(source, target)
        fsync_dir(target.parent)
        return target

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    # partial downloads
    def partial(self, sha256: str) -> Path:
        return self.partials / f"{sha256}.part"

    def checkpoint(self, sha256: str) -> Checkpoint:
        try:
            data = json.loads((self.partials / f"{sha256}.json").read_text())
            return Checkpoint(int(data["offset"]), str(data.get("etag", "")), str(data.get("url", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return Checkpoint()

    def save_checkpoint(self, sha256: str, point: Checkpoint) -> None:
        path = self.partials / f"{sha256}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"offset": point.offset, "etag": point.etag, "url": point.url}))
        os.replace(tmp, path)

    def drop_partial(self, sha256: str) -> None:
        for name in (f"{sha256}.part", f"{sha256}.json", f"{sha256}.json.tmp"):
            (self.partials / name).unlink(missing_ok=True)

    def restart_partial(self, sha256: str) -> None:
        """Empty the partial file in place (same inode: its lock holds) and forget its checkpoint."""
        os.truncate(self.partial(sha256), 0)
        for name in (f"{sha256}.json", f"{sha256}.json.tmp"):
            (self.partials / name).unlink(missing_ok=True)

    @contextmanager
    def writing(self, sha256: str, stop: threading.Event | None = None,
                on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
        """Hold the cross-process lock on this blob's partial file (created if missing) while writing it.

        Waits while another thread or process holds it (`on_wait` is told once), polling so that
        `stop` can end the wait; raises InterruptedError when it does."""
        path = self.partial(sha256)
        told = False
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if not told and on_wait is not None:
                            on_wait()
                            told = True
                        if stop is None:
                            time.sleep(0.05)
                        elif stop.wait(0.05):
                            raise InterruptedError(f"stopped while waiting for {path}")
                if _same_file(fd, path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)           # the holder committed or dropped that inode: lock the file there now
        try:
            yield path
        finally:
            os.close(fd)

    def tidy(self) -> list[str]:
        """Remove partial leftovers nobody writes: checkpoints without their file, files of objects
        already verified (a crash between commit and cleanup). Returns what went."""
        gone = []
        for meta in list(self.partials.glob("*.json")) + list(self.partials.glob("*.json.tmp")):
            sha = meta.name.split(".")[0]
            if not self.partial(sha).exists() or self.has(sha):
                meta.unlink(missing_ok=True)
                gone.append(meta.name)
        for part in self.partials.glob("*.part"):
            if self.has(part.stem):
                fd = os.open(part, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue       # someone holds it: they clean up themselves
                finally:
                    os.close(fd)
                self.drop_partial(part.stem)
                gone.append(part.name)
        return gone

    def partial_sizes(self) -> dict[str, int]:
        return {p.stem: p.stat().st_size for p in self.partials.glob("*.part")}

    def scratch(self, name: str) -> Path:
        """A private file next to the objects (same filesystem) for imports."""
        return self.partials / f"{name}.import"

    # space
    def usage(self) -> int:
        return sum(self.objects_sizes().values()) + sum(self.partial_sizes().values())

    def disk_free(self) -> int:
        return shutil.disk_usage(self.root).free

    def require_disk(self, needed: int, what: str) -> None:
        free, reserve = self.disk_free(), self.reserve()
        if free - reserve < needed:
            raise QuotaError(
                f"{what} needs {needed // 2**20} MiB but the disk holding {self.root} has {free // 2**20} MiB free"
                + (f" and keeps {reserve // 2**20} MiB in reserve ([storage] reserve_mb)" if reserve else "")
                + "; free some space"
            )


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
