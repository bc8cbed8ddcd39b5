"""Checking an image against its release: exact size and sha256 (md5 is kept for ESPHome)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from firmware_cache.errors import IntegrityError
from firmware_cache.manifest import Release

CHUNK = 1 << 20


class Digests:
    """sha256 (the identity and the check) and md5 (ESPHome's OTA wants it) in one pass."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha.update(data)
        self._md5.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()


def digest_file(path: Path, limit: int | None = None) -> Digests:
    """Digests of the first `limit` bytes of a file (all of it when None)."""
    digests = Digests()
    remaining = limit
    with path.open("rb") as fh:
        while remaining is None or remaining > 0:
            block = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not block:
                break
            digests.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digests


def check(release: Release, digests: Digests, origin: str) -> None:
    """IntegrityError unless the bytes seen are exactly the release's size and sha256."""
    if digests.size != release.size:
        raise IntegrityError(
            f"{origin}: {release.device_type} {release.version} is {digests.size} bytes, the manifest says {release.size}; discarded"
        )
    if digests.sha256 != release.sha256:
        raise IntegrityError(
            f"{origin}: {release.device_type} {release.version} has sha256 {digests.sha256[:16]}..., "
            f"the manifest says {release.sha256[:16]}... (tampered or corrupted); discarded"
        )
