"""Access and refresh tokens for devices that use the HTTP API (Mycroft's shape).

Only SHA-256 digests are stored; the tokens themselves leave Hearth once, in the answer that
issues them. A refresh rotates the pair: the used token is spent, so a replayed one is refused.
Mycroft devices refresh with their refresh token; OpenVoiceOS' client sends its (expired) access
token instead, which is accepted for one token lifetime after it expires, once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from appliance.devices.errors import BadToken
from appliance.state.store import Store

ACCESS, REFRESH = "access", "refresh"


@dataclass(frozen=True)
class Tokens:
    device_id: str
    access: str
    refresh: str
    expires_in: int

    def mycroft(self) -> dict:
        return {"uuid": self.device_id, "accessToken": self.access, "refreshToken": self.refresh,
                "expiration": self.expires_in}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    def __init__(self, store: Store, ttl_s: int):
        self.store = store
        self.ttl_s = ttl_s

    def issue(self, device_id: str, tx=None) -> Tokens:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        rows = [{"hash": digest(access), "device_id": device_id, "kind": ACCESS, "created": now, "expires": now + self.ttl_s},
                {"hash": digest(refresh), "device_id": device_id, "kind": REFRESH, "created": now,
                 "expires": now + 30 * self.ttl_s}]
        if tx is None:
            with self.store.transaction() as t:
                t["devices_tokens"].insert_all(rows)
        else:
            tx["devices_tokens"].insert_all(rows)
        return Tokens(device_id, access, refresh, self.ttl_s)

    def _row(self, token: str) -> dict | None:
        if not token or len(token) > 200:
            return None
        rows = list(self.store.db.query(
            "select t.*, d.revoked_at from devices_tokens t join devices_devices d on d.id = t.device_id where t.hash = ?",
            [digest(token)]))
        return rows[0] if rows and not rows[0]["revoked_at"] else None

    def device_for(self, access_token: str) -> str:
        """The device an access token belongs to; BadToken when unknown, spent or expired."""
        row = self._row(access_token)
        if row is None or row["kind"] != ACCESS or row["used_at"]:
            raise BadToken("unknown or revoked token: pair the device again")
        if row["expires"] <= time.time():
            raise BadToken("the access token has expired: refresh it at /v1/auth/token")
        return row["device_id"]

    def refresh(self, token: str) -> Tokens:
        row = self._row(token)
        if row is None:
            raise BadToken("unknown or revoked token: pair the device again")
        if row["used_at"]:
            raise BadToken("this token was already used for a refresh; a replayed token is refused")
        grace = self.ttl_s if row["kind"] == ACCESS else 0
        if row["expires"] + grace <= time.time():
            raise BadToken("the token is too old to refresh: pair the device again")
        with self.store.transaction() as tx:
            spent = tx.execute("update devices_tokens set used_at = ? where hash = ? and used_at is null",
                               [time.time(), row["hash"]]).rowcount
            if not spent:
                raise BadToken("this token was already used for a refresh; a replayed token is refused")
            # the whole old pair goes: a stolen access token dies with the refresh
            tx.execute("update devices_tokens set used_at = coalesce(used_at, ?) where device_id = ? and created <= ?",
                       [time.time(), row["device_id"], row["created"]])
            return self.issue(row["device_id"], tx)
