"""The upstream manifest: one JSON document per device type and channel, optionally signed.

    {"device_type": "speaker-s3", "channel": "stable", "version": "1.4.2",
     "url": "speaker-s3-1.4.2.bin", "size": 1048576, "sha256": "<64 hex>",
     "notes": "...", "chip_family": "ESP32-S3", "signature": "<base64 Ed25519>"}

(`compatible` is for Hearth's own bundles, device type `hearth-appliance`: the RAUC compatible.)

The signature covers every other field: the document without "signature", serialised with sorted
keys, no spaces, UTF-8 (`canonical_bytes`). Since it covers sha256 and size, a valid signature
binds the image too. `url` may be relative to the manifest's own address.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_cache.errors import ManifestError, SignatureError

CHANNELS = ("stable", "beta")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class Release:
    """One firmware image a device type can install."""

    device_type: str
    channel: str
    version: str
    url: str                 # absolute upstream URL, or the file name inside an import folder
    size: int
    sha256: str
    notes: str = ""
    chip_family: str = ""    # for the ESPHome manifest (ESP32, ESP32-S3, ESP8266, ...)
    signed: bool = False
    compatible: str = ""     # hearth-appliance: the RAUC compatible the bundle is for (hearth-x86_64, ...)

    @property
    def file_name(self) -> str:
        return Path(urlparse(self.url).path).name or f"{self.sha256}.bin"


def canonical_bytes(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(doc: dict, key: Ed25519PrivateKey) -> dict:
    """The document with its signature added (for firmware makers and tests)."""
    signature = base64.b64encode(key.sign(canonical_bytes(doc))).decode()
    return {**doc, "signature": signature}


def load_public_key(text: str) -> Ed25519PublicKey | None:
    """`firmware.public_key`: 64 hex digits (the raw key) or the path of a PEM file; empty: none."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    path = Path(text)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"firmware.public_key: cannot read an Ed25519 PEM key from {path} ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"firmware.public_key: {path} is not an Ed25519 public key")
    return key


def parse(
    raw: bytes,
    *,
    device_type: str,
    channel: str = "stable",
    base_url: str = "",
    public_key: Ed25519PublicKey | None = None,
    origin: str = "manifest",
) -> Release:
    """Check a manifest document and return its Release; ManifestError/SignatureError if bad."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{origin}: {len(raw)} bytes is over the {MAX_MANIFEST_BYTES}-byte limit for a manifest")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{origin}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{origin}: must be a JSON object")
    signed = _check_signature(doc, public_key, origin)
    doc_type = _text(doc, "device_type", origin, default=device_type)
    if doc_type != device_type:
        raise ManifestError(f"{origin}: is for device type '{doc_type}', not '{device_type}'")
    doc_channel = _text(doc, "channel", origin, default=channel)
    if doc_channel not in CHANNELS:
        raise ManifestError(f"{origin}: channel must be one of {CHANNELS}, not '{doc_channel}'")
    version = _text(doc, "version", origin)
    if not VERSION.match(version):
        raise ManifestError(f"{origin}: version '{version[:70]}' must be 1-64 characters of A-Z a-z 0-9 _ . + -")
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ManifestError(f"{origin}: size must be a positive integer (bytes)")
    sha = _text(doc, "sha256", origin).lower()
    if not SHA256.match(sha):
        raise ManifestError(f"{origin}: sha256 must be 64 hex digits")
    url = _text(doc, "url", origin)
    if base_url:
        url = urljoin(base_url, url)
        if urlparse(url).scheme not in ("http", "https"):
            raise ManifestError(f"{origin}: url must be http or https, not '{url[:100]}'")
    return Release(
        device_type=device_type,
        channel=doc_channel,
        version=version,
        url=url,
        size=size,
        sha256=sha,
        notes=_text(doc, "notes", origin, default=""),
        chip_family=_text(doc, "chip_family", origin, default=""),
        signed=signed,
        compatible=_text(doc, "compatible", origin, default=""),
    )


def _check_signature(doc: dict, key: Ed25519PublicKey | None, origin: str) -> bool:
    signature = doc.get("signature")
    if key is None:
        return False
    if not isinstance(signature, str) or not signature:
        raise SignatureError(f"{origin}: unsigned, but firmware.public_key is set: only signed manifests are accepted")
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical_bytes(doc))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError(f"{origin}: the Ed25519 signature does not match firmware.public_key (tampered, or signed with another key)") from None
    return True


def _text(doc: dict, name: str, origin: str, default: str | None = None) -> str:
    value = doc.get(name, default)
    if value is None:
        raise ManifestError(f"{origin}: field '{name}' is required")
    if not isinstance(value, str):
        raise ManifestError(f"{origin}: field '{name}' must be a string")
    return value
