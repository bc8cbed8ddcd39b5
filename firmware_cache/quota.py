"""The disk quota: evict least recently used images, never the current or previous release.

The quota counts verified objects and partial downloads. When a new image does not fit, images
no channel holds as current or previous go first, oldest use first. If it still does not fit,
the download is refused with a QuotaError that names the setting to raise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from firmware_cache.blobs import BlobStore
from firmware_cache.errors import QuotaError
from firmware_cache.registry import Registry

log = logging.getLogger(__name__)


class Quota:
    def __init__(self, blobs: BlobStore, registry: Registry, quota_bytes: int):
        self.blobs = blobs
        self.registry = registry
        self.quota_bytes = quota_bytes

    def make_room(self, needed: int, what: str, busy: Iterable[str] = ()) -> list[str]:
        """Evict until `needed` more bytes fit; returns the evicted sha256s. `busy`: never evict these."""
        keep = self.registry.protected_shas() | set(busy)
        objects = self.blobs.objects_sizes()
        used = sum(objects.values()) + sum(self.blobs.partial_sizes().values())
        if used + needed <= self.quota_bytes:
            return []
        known = [row["sha256"] for row in self.registry.blobs_by_age()]
        order = [sha for sha in known if sha in objects] + sorted(sha for sha in objects if sha not in known)
        evicted = []
        for sha in order:
            if used + needed <= self.quota_bytes:
                break
            if sha in keep:
                continue
            self.blobs.delete(sha)
            self.registry.forget_blob(sha)
            used -= objects[sha]
            evicted.append(sha)
            log.info("evicted firmware %s (%d bytes) to make room for %s", sha[:12], objects[sha], what)
        if used + needed > self.quota_bytes:
            raise QuotaError(
                f"{what} needs {_mib(needed)} but the firmware quota of {_mib(self.quota_bytes)} holds {_mib(used)} "
                f"of current and previous releases; raise firmware.quota_mb"
            )
        return evicted


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
