"""What must never leave the box in a support bundle, and the pass that keeps it out.

`known_secrets(settings)` reads the real secrets from the data directory: everything under
`secrets/` (admin hash and salt, the local broker logins, the Hermes login, the support channel's
token), the broker password hashes (password file and registry), token digests and pairing nonces
from the registry, TLS private keys, `[web] metrics_token`, and the stored utterances (their text and
corrections, and windows of their audio). `Secrets.redact()` replaces every form of those values in a text, plus
anything shaped like a secret (PEM private keys, Mosquitto `$7$` hashes, passwords in URLs);
`Secrets.scan()` then refuses a bundle in which any of them is still found.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from appliance.state.config import SECTIONS, Settings

MIN_LEN = 8                      # shorter values would match ordinary words
PREFIX = 4                       # the shortest form searched for (a config secret may be this short)
MIN_UTTERANCE_CHARS = 6
AUDIO_WINDOW = 48                # bytes of PCM taken from each stored utterance
SECRET_KEY_WORDS = ("token", "password", "secret")               # config keys
SECRET_FIELD_WORDS = SECRET_KEY_WORDS + ("hash", "salt", "key")   # fields of the JSON files in secrets/

PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
MOSQUITTO_HASH = re.compile(rb"\$[67]\$\d*\$?[A-Za-z0-9+/=]{8,}\$[A-Za-z0-9+/=]{16,}")
URL_PASSWORD = re.compile(rb"([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@", re.I)
SHAPES = ((PEM_KEY, b"[REDACTED:PRIVATE_KEY]"), (MOSQUITTO_HASH, b"[REDACTED:PASSWORD_HASH]"),
          (URL_PASSWORD, rb"\1:[REDACTED]@"))


class SecretInBundle(RuntimeError):
    """A known secret is still inside a bundle member: the bundle is not written."""


@dataclass(frozen=True)
class Secret:
    what: str                    # a label for messages; never the value
    value: bytes

    @functools.cached_property
    def forms(self) -> frozenset[bytes]:
        """The value as it would look raw, inside JSON and in a URL."""
        forms = {self.value}
        try:
            text = self.value.decode()
        except UnicodeDecodeError:
            return frozenset(forms)
        forms.add(json.dumps(text)[1:-1].encode())
        forms.add(json.dumps(text, ensure_ascii=False)[1:-1].encode())
        forms.add(quote(text, safe="").encode())
        return frozenset(f for f in forms if len(f) >= PREFIX)


class Secrets:
    """Every form of every secret, indexed by its first bytes: one pass over a member finds them
    all, however many there are (thousands of stored utterances cost a dict lookup per byte)."""

    def __init__(self, secrets: list[Secret]):
        self.items = secrets
        self._index: dict[bytes, list[tuple[bytes, Secret]]] = {}
        for secret in secrets:
            for form in secret.forms:
                self._index.setdefault(form[:PREFIX], []).append((form, secret))
        for candidates in self._index.values():
            candidates.sort(key=lambda c: -len(c[0]))       # the longest form wins

    def _matches(self, data: bytes):
        """(start, end, secret) of each secret found, left to right, without overlaps."""
        index, i, last = self._index, 0, len(data) - PREFIX
        while i <= last:
            for form, secret in index.get(data[i:i + PREFIX], ()):
                if data.startswith(form, i):
                    yield i, i + len(form), secret
                    i += len(form)
                    break
            else:
                i += 1

    def redact(self, data: bytes) -> bytes:
        """Every form of every known secret, and anything shaped like one, replaced by a marker."""
        out, pos = [], 0
        for start, end, secret in self._matches(data):
            out += [data[pos:start], marker(secret.what)]
            pos = end
        data = b"".join(out) + data[pos:]
        for pattern, replacement in SHAPES:
            data = pattern.sub(replacement, data)
        return data

    def scan(self, name: str, data: bytes) -> None:
        """Raise SecretInBundle when a known secret (in any form) or a private key is in `data`."""
        for _start, _end, secret in self._matches(data):
            raise SecretInBundle(f"refusing to write the support bundle: {name} contains a {secret.what}")
        if PEM_KEY.search(data):
            raise SecretInBundle(f"refusing to write the support bundle: {name} contains a private key")


def _add(found: dict[bytes, Secret], what: str, value, minimum: int = MIN_LEN) -> None:
    if isinstance(value, str):
        value = value.strip().encode()
    if isinstance(value, bytes) and len(value) >= minimum:
        found.setdefault(value, Secret(what, value))
        _add_decoded(found, what, value)


def _add_decoded(found: dict[bytes, Secret], what: str, value: bytes) -> None:
    """A base64 value's raw bytes and hex too: a leak may have re-encoded it."""
    if len(value) < 16 or not re.fullmatch(rb"[A-Za-z0-9+/]+={0,2}", value):
        return
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return
    if len(raw) >= 12:
        found.setdefault(raw, Secret(what, raw))
        found.setdefault(raw.hex().encode(), Secret(what, raw.hex().encode()))


def _add_hash(found: dict[bytes, Secret], what: str, value: str | None) -> None:
    """A Mosquitto `$7$iterations$salt$digest` hash, and its salt and digest on their own."""
    if not value:
        return
    _add(found, what, value)
    for part in value.split("$")[3:]:
        _add(found, what, part)


def _json_strings(node, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _json_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for value in node:
            yield from _json_strings(value, path)
    elif isinstance(node, str):
        yield path, node


def _secrets_dir(found: dict[bytes, Secret], folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        try:
            for key, value in _json_strings(json.loads(data)):
                if not any(word in key.rsplit(".", 1)[-1].lower() for word in SECRET_FIELD_WORDS):
                    continue
                if value.startswith("$7$"):
                    _add_hash(found, f"secrets/{path.name}", value)
                else:
                    _add(found, f"secrets/{path.name}", value)
        except ValueError:
            for line in data.splitlines():
                _add(found, f"secrets/{path.name}", line, 16)


def _private_keys(found: dict[bytes, Secret], data_dir: Path) -> None:
    for path in sorted(data_dir.glob("tls/*")):
        if not path.is_file():
            continue
        pem = path.read_bytes()
        if b"PRIVATE KEY" not in pem:
            continue
        body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
        _add(found, f"private key {path.name}", body)
        for line in pem.splitlines():
            if not line.startswith(b"-----"):
                _add(found, f"private key {path.name}", line, 16)


def _registry(found: dict[bytes, Secret], db_path: Path) -> None:
    if not db_path.exists():
        return
    queries = (("device broker password hash", "select password_hash from devices_devices", True),
               ("device token digest", "select hash from devices_tokens", False),
               ("pairing token digest", "select token_hash from devices_codes", False),
               ("pairing nonce", "select state from devices_codes", False))
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return
    try:
        for what, sql, is_hash in queries:
            try:
                rows = conn.execute(sql).fetchall()
            except sqlite3.Error:
                continue          # a damaged or older database: the bundle says so elsewhere
            for (value,) in rows:
                (_add_hash if is_hash else _add)(found, what, value)
    finally:
        conn.close()


def _utterances(found: dict[bytes, Secret], folder: Path) -> None:
    if not folder.is_dir():
        return
    for meta in folder.glob("*/*.json"):
        try:
            stored = json.loads(meta.read_text())
            text = stored.get("text", "")
            corrected = (stored.get("review") or {}).get("corrected", "")     # a person's correction (voice/review.py)
        except (OSError, ValueError, AttributeError):
            continue
        _add(found, "stored utterance text", text, MIN_UTTERANCE_CHARS)
        _add(found, "stored utterance correction", corrected, MIN_UTTERANCE_CHARS)
    for wav in folder.glob("*/*.wav"):
        try:
            size = wav.stat().st_size
            with wav.open("rb") as fh:
                for fraction in (0.3, 0.5, 0.7):
                    fh.seek(max(44, int(size * fraction)) & ~1)
                    window = fh.read(AUDIO_WINDOW)
                    if len(window) == AUDIO_WINDOW and len(set(window)) > 4:   # not silence
                        found.setdefault(window, Secret("stored utterance audio", window))
        except OSError:
            continue


def known_secrets(settings: Settings) -> Secrets:
    data_dir = settings.data_dir
    found: dict[bytes, Secret] = {}
    _secrets_dir(found, data_dir / "secrets")
    _private_keys(found, data_dir)
    passwd = data_dir / "broker" / "passwd"
    if passwd.exists():
        for line in passwd.read_text(errors="replace").splitlines():
            _add_hash(found, "broker password hash", line.partition(":")[2])
    _registry(found, data_dir / "hearth.db")
    for name in SECTIONS:
        for key, value in vars(getattr(settings, name)).items():
            if isinstance(value, str) and any(word in key for word in SECRET_KEY_WORDS):
                _add(found, f"config {name}.{key}", value, 4)
    _utterances(found, data_dir / "utterances")
    _utterances(found, data_dir / "wake-review")        # wake word clips: the same layout, text and audio
    banner = data_dir / "console.issue"          # the appliance's first-boot banner shows the admin password
    if banner.exists():
        for word in re.findall(rb"\b[a-z2-9]{5}(?:-[a-z2-9]{5}){3}\b", banner.read_bytes()):
            _add(found, "admin password (console banner)", word)
    return Secrets(list(found.values()))


def marker(what: str) -> bytes:
    """What replaces a secret: its kind in capitals (so that it never spells a stored utterance)."""
    return f"[REDACTED:{re.sub(r'[^A-Za-z0-9]+', '_', what).strip('_').upper()}]".encode()
