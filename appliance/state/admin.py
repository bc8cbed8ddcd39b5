"""The web page's admin password: generated on first start, shown once, stored only as a hash.

Kept in `<data>/secrets/admin.json` (mode 0600) as scrypt parameters, salt and digest. The clear
password exists only in the first-start note that `hearth run` prints (and in the output of
`hearth admin reset-password`); nothing else ever writes it down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

from appliance.state.storage import atomic_write

ADMIN_USER = "admin"
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT["n"], r: int = SCRYPT["r"],
                  p: int = SCRYPT["p"]) -> dict:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return {"alg": "scrypt", "n": n, "r": r, "p": p,
            "salt": base64.b64encode(salt).decode(), "hash": base64.b64encode(digest).decode()}


def new_password() -> str:
    """Four groups of five characters from an alphabet that reads aloud and types well on a phone."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


class AdminPassword:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "secrets" / "admin.json"

    def exists(self) -> bool:
        return self.path.exists()

    def ensure(self) -> str | None:
        """Create a password on first start; returns it (once), or None when one is already set."""
        if self.exists():
            return None
        return self.reset()

    def reset(self) -> str:
        had_one = self.exists()
        password = new_password()
        self.set(password)
        if had_one:
            # the appliance's first-boot banner (login screen) shows the old password: take it down
            (self.path.parent.parent / "console.issue").unlink(missing_ok=True)
        return password

    def set(self, password: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, json.dumps(hash_password(password)), self.path.parent.parent, mode=0o600)

    def generation(self) -> int:
        """Changes whenever the password does: sessions signed in before a reset stop working."""
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return 0

    def cookie_key(self) -> bytes:
        """A server-side key for signed cookies, derived from the stored hash: a new password voids them."""
        try:
            digest = base64.b64decode(json.loads(self.path.read_text())["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return b""
        return hashlib.sha256(b"hearth-cookie-key\0" + digest).digest()

    def verify(self, password: str) -> bool:
        try:
            stored = json.loads(self.path.read_text())
            salt = base64.b64decode(stored["salt"])
            want = base64.b64decode(stored["hash"])
            got = hash_password(password, salt, stored["n"], stored["r"], stored["p"])["hash"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return hmac.compare_digest(base64.b64decode(got), want)


def first_password_note(admin: "AdminPassword") -> str | None:
    """Make sure an admin password exists; the line that shows a new one, once (None if it existed)."""
    password = admin.ensure()
    if password:
        return f"web admin password (shown once; reset with 'hearth admin reset-password'): {password}"
    return None


def install(service) -> None:
    """Room hook (appliance/service.py install_rooms): make sure an admin password exists; a new one goes into the start-up notes."""
    service.admin = AdminPassword(service.settings.data_dir)
    if note := first_password_note(service.admin):
        service.startup_notes.append(note)
