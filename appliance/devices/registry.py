"""The device registry in SQLite: who belongs, where they are, what they run, whether they are online.

Rows are never deleted on revoke: `revoked_at` is set and the login, tokens and settings go, so the
history stays readable. Every change bumps a generation number in the kv table; the running
service watches it, so a change made by `hearth devices ...` in another process reaches the
broker (password file, ACL, disconnects) and the devices (retained settings) within a second.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, fields

import sqlite_utils

from appliance.devices.errors import BadSetting, UnknownDevice
from appliance.state.store import Store
from mqtt import device_type as device_types
from mqtt import jobs
from mqtt.broker import Account

GENERATION_KEY = "devices.generation"
RESERVED_IDS = {"server", "broadcast", "type", "hearth", "hearth-cli", "hearth-reports"}


def _0001_registry(db: sqlite_utils.Database) -> None:
    db["devices_devices"].create({
        "id": str, "name": str, "room": str, "device_type": str, "platform": str, "firmware": str,
        "created": float, "last_seen": float, "online": int, "transport": str,
        "password_hash": str, "activated_at": float, "revoked_at": float,
    }, pk="id", not_null={"name", "created"}, defaults={"room": "", "platform": "", "firmware": "",
                                                        "online": 0, "transport": "", "device_type": "hearth"})
    db["devices_settings"].create({"device_id": str, "key": str, "value": str}, pk=("device_id", "key"),
                                  foreign_keys=[("device_id", "devices_devices", "id")])
    db["devices_codes"].create({
        "code": str, "token_hash": str, "state": str, "client_addr": str, "device_type": str,
        "platform": str, "name": str, "created": float, "expires": float,
        "confirmed_at": float, "device_id": str, "used_at": float,
    }, pk="code")
    db["devices_tokens"].create({"hash": str, "device_id": str, "kind": str, "created": float,
                                 "expires": float, "used_at": float}, pk="hash",
                                foreign_keys=[("device_id", "devices_devices", "id")])
    db["devices_tokens"].create_index(["device_id"])
    db["devices_skills"].create({"device_id": str, "skill_gid": str, "meta": str, "settings": str,
                                 "updated": float}, pk=("device_id", "skill_gid"),
                                foreign_keys=[("device_id", "devices_devices", "id")])


def _0002_code_asks(db: sqlite_utils.Database) -> None:
    """How often one address asked for the same pairing (duplicates collapse into one request)."""
    db["devices_codes"].add_column("asked", int, not_null_default=1)
    db["devices_codes"].create_index(["client_addr"])


def _0003_wyoming_clients(db: sqlite_utils.Database) -> None:
    """Wyoming clients by address: `allowed` by a person, or `waiting` for one (wyoming_clients.py)."""
    db["devices_wyoming"].create({
        "address": str, "state": str, "first_seen": float, "last_seen": float, "asks": int, "wants": str,
        "allowed_at": float,
    }, pk="address", not_null={"state"}, defaults={"asks": 0, "wants": ""})


MIGRATIONS = [
    ("devices_0001_registry", _0001_registry),
    ("devices_0002_code_asks", _0002_code_asks),
    ("devices_0003_wyoming_clients", _0003_wyoming_clients),
]


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    room: str = ""
    device_type: str = "hearth"
    platform: str = ""
    firmware: str = ""
    created: float = 0.0
    last_seen: float | None = None
    online: bool = False
    transport: str = ""              # tls | plain | "" (not connected since Hearth started logging it)
    activated_at: float | None = None   # when the device collected its credentials
    revoked_at: float | None = None

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "active" if self.activated_at else "waiting"   # waiting: confirmed, device not yet back

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state
        return out

    @classmethod
    def from_row(cls, row: dict) -> "Device":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["online"] = bool(row.get("online"))
        return cls(**values)


def new_device_id() -> str:
    while True:
        candidate = uuid.uuid4().hex[:12]
        if not candidate.isdigit():      # never all digits: it is also a topic level and a broker login
            return candidate


def check_type(device_type: str) -> str:
    """The device type if it follows the one rule (mqtt/device_type.py); BadSetting otherwise."""
    try:
        return device_types.check(device_type)
    except device_types.BadDeviceType as exc:
        raise BadSetting(str(exc)) from None


def check_name(name: str, what: str = "name") -> str:
    name = " ".join(str(name).split())
    if not name or len(name) > 64:
        raise BadSetting(f"{what} must be 1-64 characters")
    return name


class Registry:
    def __init__(self, store: Store):
        self.store = store

    # reading
    def get(self, device_id: str, include_revoked: bool = False) -> Device:
        rows = list(self.store.db.query("select * from devices_devices where id = ?", [device_id]))
        if not rows or (rows[0]["revoked_at"] and not include_revoked):
            raise UnknownDevice(f"no device '{device_id}' (see: hearth devices list)")
        return Device.from_row(rows[0])

    def find(self, key: str) -> Device:
        """A device by id, unique id prefix (4+ characters) or exact name: what a person types."""
        rows = list(self.store.db.query(
            "select * from devices_devices where revoked_at is null and (id = ? or (length(?) >= 4 and id like ? || '%') or name = ?)",
            [key, key, key, key]))
        exact = [r for r in rows if r["id"] == key]
        if exact or len(rows) == 1:
            return Device.from_row((exact or rows)[0])
        if not rows:
            raise UnknownDevice(f"no device '{key}' (see: hearth devices list)")
        raise UnknownDevice(f"'{key}' matches {len(rows)} devices; use the full id")

    def list(self, include_revoked: bool = False) -> list[Device]:
        where = "" if include_revoked else "where revoked_at is null"
        return [Device.from_row(r) for r in self.store.db.query(f"select * from devices_devices {where} order by created")]

    def password_hashes(self) -> list[tuple[Device, str]]:
        rows = self.store.db.query("select * from devices_devices where revoked_at is null and password_hash is not null")
        return [(Device.from_row(r), r["password_hash"]) for r in rows]

    def broker_accounts(self) -> list[Account]:
        """Every paired, unrevoked device as a broker login (user = device id); a helper's login may
        also read jobs and may not act as a voice device (mqtt/jobs.py)."""
        return [Account(d.id, pw_hash, "helper", d.device_type, **jobs.helper_acl(d.id), label=d.name)
                if d.device_type == jobs.HELPER_TYPE else Account(d.id, pw_hash, "device", d.device_type, label=d.name)
                for d, pw_hash in self.password_hashes()]

    def generation(self) -> int:
        return int(self.store.get(GENERATION_KEY, "0") or 0)

    # writing
    def bump(self, tx) -> None:
        rows = list(tx.query("select value from kv where key = ?", [GENERATION_KEY]))
        tx["kv"].upsert({"key": GENERATION_KEY, "value": str(int(rows[0]["value"]) + 1 if rows else 1)}, pk="key")

    def create(self, name: str, device_type: str, platform: str = "", room: str = "") -> Device:
        row = {"id": new_device_id(), "name": check_name(name), "room": room, "device_type": check_type(device_type),
               "platform": platform[:64], "created": time.time(), "online": 0}
        with self.store.transaction() as tx:
            tx["devices_devices"].insert(row)
            self.bump(tx)
        return self.get(row["id"])

    def update(self, device_id: str, **values) -> Device:
        self.get(device_id)
        with self.store.transaction() as tx:
            tx["devices_devices"].update(device_id, values)
            self.bump(tx)
        return self.get(device_id, include_revoked=True)

    def touch(self, device_id: str, online: bool | None = None, **values) -> None:
        """Presence and reported facts; not a change of who may connect, so no generation bump."""
        changes = {"last_seen": time.time(), **values}
        if online is not None:
            changes["online"] = int(online)
        with self.store.transaction() as tx:
            if list(tx.query("select 1 from devices_devices where id = ? and revoked_at is null", [device_id])):
                tx["devices_devices"].update(device_id, changes)

    def revoke(self, device_id: str) -> Device:
        self.get(device_id)
        with self.store.transaction() as tx:
            tx["devices_devices"].update(device_id, {"revoked_at": time.time(), "password_hash": None, "online": 0})
            tx.execute("delete from devices_tokens where device_id = ?", [device_id])
            tx.execute("delete from devices_settings where device_id = ?", [device_id])
            tx.execute("delete from devices_skills where device_id = ?", [device_id])
            self.bump(tx)
        return self.get(device_id, include_revoked=True)
