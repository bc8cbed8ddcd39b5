"""How large a request body may be, decided from the request line and headers alone.

The web edge (web/edge.py) asks this before it reads a byte of the body, so a body that the app
would refuse is never buffered or spooled to a temp file:

| request | limit |
|---|---|
| a page or `/api/...` route without a signed-in session | PRE_LOGIN_BYTES, then 401 `login_required` |
| `POST /login` | LOGIN_BYTES |
| `POST /v1/stt` with a valid device access token | the longest utterance as 48 kHz stereo PCM |
| `POST /v1/stt` without one | PRE_LOGIN_BYTES, then 401 `bad_token` |
| other `/v1/...` (pairing, settings) | `[limits] max_json_bytes` |
| `/firmware/...`, `/static/...`, `/health`, `/metrics` | PRE_LOGIN_BYTES |
| `POST /api/system/restore` (signed in) | the largest backup upload (appliance/state/backup.py) |
| `POST /api/system/update/upload` (signed in) | `[update] max_bundle_mb`, and what the data disk has free above the low-disk reserve (507 `disk_full` over that); the body is spooled to `<data>/update/incoming/`, never held in memory |
| any other route (signed in) | SIGNED_IN_BYTES |

Over the limit: 413 `too_large`, or 401 when the route needs a sign-in the request lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from web.auth import COOKIE, is_public
from web.edge import JsonError

PRE_LOGIN_BYTES = 4096
LOGIN_BYTES = 16 * 1024
SIGNED_IN_BYTES = 1 << 20
MULTIPART_SLACK = 64 * 1024
UPDATE_UPLOAD = "/api/system/update/upload"


@dataclass(frozen=True)
class Limit:
    max_bytes: int
    needs: str = ""          # "" (too large is too large), "login", "device" or "disk": what would have allowed more
    spool_dir: Path | None = None    # the body goes straight to a file in this folder (web/edge.py SpoolFile)

    def refusal(self, size: int) -> JsonError:
        if self.needs == "login":
            return JsonError(401, "Unauthorized", "login_required",
                             "sign in first (POST /login); a body is accepted only from a signed-in session")
        if self.needs == "device":
            return JsonError(401, "Unauthorized", "bad_token",
                             "this route needs a paired device's access token (Authorization: Bearer ...)")
        if self.needs == "disk":
            return JsonError(507, "Insufficient Storage", "disk_full",
                             f"the data disk has room for {self.max_bytes} bytes above its low-disk reserve; "
                             f"this upload is {size} bytes or more: free some space first")
        return JsonError(413, "Request Entity Too Large", "too_large",
                         f"the body ({size} bytes or more) is over this route's limit of {self.max_bytes} bytes")


class BodyLimits:
    def __init__(self, signed_in: Callable[[str], bool], device_token_ok: Callable[[str], bool],
                 stt_bytes: int, json_bytes: int, restore_bytes: int, bundle_bytes: int = 0,
                 bundle_dir: Path | None = None, bundle_room: Callable[[], int] | None = None):
        self.signed_in, self.device_token_ok = signed_in, device_token_ok
        self.stt_bytes, self.json_bytes = stt_bytes, json_bytes
        self.restore_bytes = restore_bytes + MULTIPART_SLACK
        self.bundle_bytes, self.bundle_dir, self.bundle_room = bundle_bytes, bundle_dir, bundle_room
        self.largest = max(self.stt_bytes, self.restore_bytes, SIGNED_IN_BYTES, self.bundle_bytes)

    def for_request(self, method: str, path: str, headers: dict) -> Limit:
        """`headers` as waitress keeps them: upper case, '_' for '-' (COOKIE, AUTHORIZATION)."""
        if path == "/login":
            return Limit(LOGIN_BYTES)
        if path == "/v1/stt":
            if self.device_token_ok(_bearer(headers.get("AUTHORIZATION", ""))):
                return Limit(self.stt_bytes)
            return Limit(PRE_LOGIN_BYTES, "device")
        if path.startswith("/v1/"):
            return Limit(self.json_bytes)
        if is_public(path):
            return Limit(PRE_LOGIN_BYTES)
        if not self.signed_in(_cookie(headers.get("COOKIE", ""), COOKIE)):
            return Limit(PRE_LOGIN_BYTES, "login")
        if path == "/api/system/restore":
            return Limit(self.restore_bytes)
        if path == UPDATE_UPLOAD and method == "POST" and self.bundle_dir is not None:
            room = self.bundle_room() if self.bundle_room else self.bundle_bytes
            if room < self.bundle_bytes:
                return Limit(max(0, room), "disk", spool_dir=self.bundle_dir)
            return Limit(self.bundle_bytes, spool_dir=self.bundle_dir)
        return Limit(SIGNED_IN_BYTES)


def _bearer(header: str) -> str:
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"')
    return ""


def for_service(service, app) -> BodyLimits:
    import sqlite3

    from appliance.state import backup
    from appliance.devices.errors import DeviceError

    sessions = app.config["hearth.sessions"]
    limits = service.settings.limits

    def signed_in(token: str) -> bool:
        return bool(token) and sessions.get(token, service.admin.generation()) is not None

    def device_token_ok(token: str) -> bool:
        devices = getattr(service, "devices", None)
        if not token or devices is None:
            return False
        try:
            devices.tokens.device_for(token)        # one indexed read (WAL: never waits for a writer)
        except (DeviceError, sqlite3.Error):         # unknown token, or a database hiccup: the app decides
            return False
        return True

    def bundle_room() -> int:
        return service.disk.free() - service.disk.reserve_bytes()

    return BodyLimits(signed_in, device_token_ok, stt_bytes=int(limits.max_session_s * 48000 * 2 * 2),
                      json_bytes=limits.max_json_bytes, restore_bytes=backup.MAX_BYTES,
                      bundle_bytes=service.settings.update.max_bundle_mb * 2**20,
                      bundle_dir=service.settings.data_dir / "update" / "incoming", bundle_room=bundle_room)
