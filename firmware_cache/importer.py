"""Import from a folder or USB stick: manifests (*.json, same format as upstream) next to their files.

Each manifest's `url` names the image by its last path component, looked for in the same folder,
so a maker can copy the upstream manifest and image as they are. Images are copied while hashed
and enter the store only if size and sha256 (and the signature, when a key is configured) match.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware_cache import manifest
from firmware_cache.blobs import BlobStore
from firmware_cache.errors import FirmwareError, IntegrityError, ManifestError
from firmware_cache.verify import CHUNK, Digests, check
from mqtt import device_type as device_types


@dataclass(frozen=True)
class Found:
    manifest: Path
    release: manifest.Release | None = None
    image: Path | None = None
    error: FirmwareError | None = None


def scan(folder: Path, public_key: Ed25519PublicKey | None) -> list[Found]:
    """Every manifest in the folder (not recursive), checked; bad ones carry their error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder (give the folder that holds the manifests and images)")
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            raw = path.read_bytes()
            release = manifest.parse(raw, device_type=_declared_type(raw, path), public_key=public_key, origin=str(path))
            image = folder / release.file_name
            if not image.is_file():
                raise ManifestError(f"{path}: its image {release.file_name} is not in {folder}")
            found.append(Found(path, release, image))
        except FirmwareError as exc:
            found.append(Found(path, error=exc))
        except OSError as exc:
            found.append(Found(path, error=ManifestError(f"{path}: cannot read ({exc.strerror})")))
    if not found:
        raise ManifestError(f"{folder}: no *.json manifests here")
    return found


def _declared_type(raw: bytes, path: Path) -> str:
    try:
        value = json.loads(raw).get("device_type")
    except (ValueError, AttributeError):
        raise ManifestError(f"{path}: not a JSON object") from None
    if not device_types.is_valid(value):
        raise ManifestError(f"{path}: an imported manifest must name its device_type ({device_types.RULE})")
    return value


def copy_verified(found: Found, blobs: BlobStore) -> Digests:
    """Copy the image into the store if it matches its manifest; IntegrityError otherwise."""
    assert found.release is not None and found.image is not None
    release = found.release
    scratch = blobs.scratch(release.sha256)
    digests = Digests()
    try:
        with found.image.open("rb") as src, scratch.open("wb") as dst:
            while block := src.read(CHUNK):
                if digests.size + len(block) > release.size:
                    raise IntegrityError(f"{found.image}: larger than the {release.size} bytes its manifest says; not imported")
                dst.write(block)
                digests.update(block)
        check(release, digests, str(found.image))
        blobs.commit(release.sha256, scratch)
    finally:
        if scratch.exists():
            os.unlink(scratch)
    return digests
