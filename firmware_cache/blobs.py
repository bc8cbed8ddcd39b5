"""The content-addressed file store under `<data_dir>/firmware/`.

    objects/<aa>/<sha256>     verified images, read-only, named by their hash
    partial/<sha256>.part     an upstream download in progress (never served)
    partial/<sha256>.json     its checkpoint: bytes known to be on disk (fsynced), ETag

A file enters objects/ only by `commit`: fsync, then an atomic rename, then fsync of the
directory, after its hash was checked. So everything under objects/ is verified, and a crash
leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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
        _fsync_dir(target.parent)
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
