"""Pairing with a person in the loop, in the shape of Mycroft's device API.

1. The device asks for a code (`request_code(state, client_addr)`): a 6-character code from an
   alphabet that is easy to say and read, and a secret token only the device knows.
2. The device speaks or shows the code; a person confirms it (`confirm(code)`, from the web page
   or `hearth devices pair CODE`). That creates the registry entry.
3. The device polls `activate(state, token)`; after the confirmation the next poll returns its
   identity and credentials, once. Before it, NotConfirmed; nothing is granted without a person.

Codes live in SQLite (the command line confirms them from another process), expire after
`devices.code_ttl_s`, and are single use. Code and activate calls are rate limited per client.

Nobody can flood the person's list: a repeat of a waiting request (same address, type, platform
and name) replaces it and counts as one (`asked` says how often), one address has at most
`devices.max_pending_per_address` requests waiting and all addresses together
`devices.max_pending`. The list shows each request's address and the name the device gave, never
the code: the person types the code the device shows or says, so a name alone admits nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from appliance.state.config import DeviceSettings
from appliance.devices.errors import BadCode, BadSetting, BadToken, NotConfirmed, RateLimited, TooManyPending
from appliance.devices.registry import Device, Registry, check_name, check_type
from appliance.devices.tokens import TokenBook, Tokens, digest
from appliance.state.store import Store
from mqtt.broker import hash_password, new_password

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B, G/Q: nothing a listener or a reader can mix up.
ALPHABET = "ACDEFHJKMNPRTUVWXY34679"
CODE_LENGTH = 6


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    return "".join(ch for ch in str(code).upper() if ch.isalnum())


@dataclass(frozen=True)
class PendingCode:
    code: str
    client_addr: str
    device_type: str
    platform: str
    name: str
    created: float
    expires: float
    asked: int = 1           # requests collapsed into this one
    id: str = ""             # names the request on the page without giving its code away

    def public(self) -> dict:
        """What the page and the API show: everything but the code."""
        return {"id": self.id, "client_addr": self.client_addr, "device_type": self.device_type,
                "platform": self.platform, "name": self.name, "created": self.created, "expires": self.expires,
                "asked": self.asked}


def request_id(token_hash: str) -> str:
    return token_hash[:16]     # a prefix of the hash of a 256-bit secret: says nothing about the code


@dataclass(frozen=True)
class Activation:
    device: Device
    tokens: Tokens
    mqtt_password: str


class RateLimiter:
    """At most `per_minute` calls per (what, client) in any 60 s window."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._seen: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def check(self, what: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            window = self._seen.setdefault((what, client), deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_minute:
                raise RateLimited(f"too many {what} calls from {client}; wait {60 - (now - window[0]):.0f} s")
            window.append(now)
            if len(self._seen) > 4096:          # bounded, however many addresses call
                self._seen = {k: w for k, w in self._seen.items() if w and w[-1] > now - 60}

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


class Pairing:
    def __init__(self, store: Store, registry: Registry, tokens: TokenBook, settings: DeviceSettings):
        self.store = store
        self.registry = registry
        self.tokens = tokens
        self.settings = settings
        self.limiter = RateLimiter(settings.code_rate_per_min)

    def request_code(self, state: str, client_addr: str, device_type: str = "mycroft", platform: str = "",
                     name: str = "") -> tuple[str, str]:
        """A new code and the token the device must show when it polls. Rate limited per client."""
        self.limiter.check("code", client_addr)
        if not isinstance(state, str) or len(state) > 128:
            raise BadSetting("state must be a string of at most 128 characters")
        check_type(device_type)
        if name:
            name = check_name(name)
        token = secrets.token_urlsafe(32)
        now = time.time()
        client_addr, platform = client_addr[:64], str(platform)[:64]
        with self.store.transaction() as tx:
            tx.execute("delete from devices_codes where expires < ?", [now - 3600])
            waiting = list(tx.query("select * from devices_codes where confirmed_at is null and expires > ?", [now]))
            mine = [r for r in waiting if r["client_addr"] == client_addr]
            repeats = [r for r in mine if (r["device_type"], r["platform"], r["name"]) == (device_type, platform, name)]
            if repeats:                  # the same request again: it replaces the waiting one
                tx.execute(f"delete from devices_codes where code in ({','.join('?' * len(repeats))})",
                           [r["code"] for r in repeats])
            elif len(mine) >= self.settings.max_pending_per_address:
                raise TooManyPending(f"{len(mine)} pairing requests from {client_addr} already wait for a person "
                                     f"(at most {self.settings.max_pending_per_address} per address): confirm "
                                     "or let them expire first")
            elif len(waiting) >= self.settings.max_pending:
                # the list is full: a request from a quieter address takes the busiest address's newest
                # place (7 addresses x 3 requests once kept every other device out)
                per = Counter(r["client_addr"] for r in waiting)
                busiest, held = per.most_common(1)[0]
                if held <= len(mine) + 1:
                    raise TooManyPending(f"{len(waiting)} pairing requests already wait for a person (at most "
                                         f"{self.settings.max_pending}); try again when they are confirmed or expired")
                newest = max((r for r in waiting if r["client_addr"] == busiest), key=lambda r: r["created"])
                tx.execute("delete from devices_codes where code = ?", [newest["code"]])
            while True:
                code = new_code()
                if not list(tx.query("select 1 from devices_codes where code = ?", [code])):
                    break
            # a repeat keeps the first request's place and expiry: asking again every few minutes must
            # not hold a slot of the list for ever (7 addresses once kept a real device out that way)
            first = min(repeats, key=lambda r: r["created"]) if repeats else None
            tx["devices_codes"].insert({
                "code": code, "token_hash": digest(token), "state": state, "client_addr": client_addr,
                "device_type": device_type, "platform": platform, "name": name,
                "created": first["created"] if first else now,
                "expires": first["expires"] if first else now + self.settings.code_ttl_s,
                "asked": 1 + sum(r["asked"] for r in repeats)})
        return code, token

    def pending(self) -> list[PendingCode]:
        rows = self.store.db.query(
            "select * from devices_codes where confirmed_at is null and expires > ? order by created", [time.time()])
        return [PendingCode(r["code"], r["client_addr"], r["device_type"], r["platform"], r["name"],
                            r["created"], r["expires"], r["asked"], request_id(r["token_hash"])) for r in rows]

    def confirm(self, code: str, name: str | None = None, room: str = "", request: str | None = None) -> Device:
        """A person typed the code a device shows: the device gets an entry (and its login at its next poll).
        `request`: the id of the waiting request the person typed it for; the code must be that one's."""
        code = normalize_code(code)
        rows = list(self.store.db.query("select * from devices_codes where code = ?", [code]))
        if len(code) != CODE_LENGTH or not rows:
            raise BadCode(f"no pairing code '{code}': check the code the device shows or says")
        row = rows[0]
        if request and request_id(row["token_hash"]) != request:
            raise BadCode(f"code {code} belongs to another pairing request, not this one: check which device "
                          "shows it")
        if row["confirmed_at"]:
            raise BadCode(f"code {code} was already used; ask the device for a new one")
        if row["expires"] <= time.time():
            raise BadCode(f"code {code} has expired; ask the device for a new one")
        label = name or row["name"] or f"{row['platform'] or row['device_type']} {code[:3]}"
        with self.store.transaction() as tx:
            taken = tx.execute("update devices_codes set confirmed_at = ? where code = ? and confirmed_at is null",
                               [time.time(), code]).rowcount
        if not taken:
            raise BadCode(f"code {code} was already used; ask the device for a new one")
        device = self.registry.create(label, row["device_type"], row["platform"], room)
        with self.store.transaction() as tx:
            tx["devices_codes"].update(code, {"device_id": device.id})
        return device

    def activate(self, state: str, token: str, client_addr: str, platform: str = "", firmware: str = "") -> Activation:
        """The device's poll. NotConfirmed until a person confirmed; then its identity, once."""
        self.limiter.check("activate", client_addr)
        if not isinstance(token, str) or not token or len(token) > 200:
            raise BadToken("token is missing: send the token that came with the code")
        rows = list(self.store.db.query("select * from devices_codes where token_hash = ?", [digest(token)]))
        if not rows or rows[0]["state"] != state:
            raise BadToken("unknown pairing token or state: ask for a new code")
        row = rows[0]
        if row["used_at"]:
            raise BadCode("this pairing was already collected; a replayed activation is refused")
        if not row["confirmed_at"]:
            if row["expires"] <= time.time():
                raise BadCode("the code expired before anyone confirmed it; ask for a new one")
            raise NotConfirmed(f"waiting for a person to confirm code {row['code']}")
        if not row["device_id"]:
            raise NotConfirmed("the confirmation is being recorded; poll again")
        password = new_password()
        now = time.time()
        with self.store.transaction() as tx:
            if not tx.execute("update devices_codes set used_at = ? where code = ? and used_at is null",
                              [now, row["code"]]).rowcount:
                raise BadCode("this pairing was already collected; a replayed activation is refused")
            changes = {"password_hash": hash_password(password), "activated_at": now, "last_seen": now}
            if platform:
                changes["platform"] = str(platform)[:64]
            if firmware:
                changes["firmware"] = str(firmware)[:64]
            tx["devices_devices"].update(row["device_id"], changes)
            tokens = self.tokens.issue(row["device_id"], tx)
            self.registry.bump(tx)
        return Activation(self.registry.get(row["device_id"]), tokens, password)
