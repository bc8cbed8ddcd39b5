"""Devices a repair could not bring back: what else the box knows, compared with the restored registry.

A restore from a snapshot (or a zero-length or empty `hearth.db`) can lose devices paired after the
newest snapshot. The broker's password file and ACL (written from the registry at every change, so
newer than any snapshot) and the readable rows of the damaged file still name them. `compare()`
lists every device login known there but missing from the registry Hearth starts with; the list is
kept in `<data>/damaged/lost.json` (the broker's files are rewritten from the registry at start, so
they cannot be asked twice) and shown on /health, /metrics, the Overview and `hearth devices list`
until a person acknowledges it (the Overview's button, or `hearth devices lost --acknowledge`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.state.storage import atomic_write

log = logging.getLogger(__name__)
TYPE_LINE = "topic read hearth/type/"
NAME_LINE = "# device: "
PAIR_AGAIN = "paired after the last snapshot: pair again"


@dataclass(frozen=True)
class LostDevice:
    id: str
    name: str
    device_type: str
    found_in: str              # where it was still known: "broker login", "damaged registry"

    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id


def broker_devices(broker_dir: Path) -> tuple[dict[str, LostDevice], str | None]:
    """Device and helper logins in the broker's password file whose ACL block names a device type
    (the service's and the command line's logins have none), and what is wrong with those files when
    they cannot be read whole (None: readable, or not there yet: a first start)."""
    passwd, acl_file = broker_dir / "passwd", broker_dir / "acl"
    if not passwd.exists():
        return {}, None
    try:
        lines = passwd.read_text().splitlines()
        acl = acl_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{passwd} or {acl_file} cannot be read ({exc})"
    bad = [n for n, line in enumerate(lines, 1) if line and (":" not in line or "$" not in line.split(":", 1)[1])]
    if bad:
        return {}, f"{passwd} is damaged (line {bad[0]} is not a login)"
    logins = {line.split(":", 1)[0] for line in lines if line}
    found: dict[str, LostDevice] = {}
    user, name = "", ""
    for line in acl:
        if line.startswith(NAME_LINE):
            name = line[len(NAME_LINE):].strip()
        elif line.startswith("user "):
            user = line[5:].strip()
        elif line.startswith(TYPE_LINE) and user in logins:
            found[user] = LostDevice(user, name, line[len(TYPE_LINE):].split("/", 1)[0], "broker login")
        elif not line.strip():
            user, name = "", ""
    return found, None


ACTIVE = "revoked_at is null and password_hash is not null"
LOGIN_OR_REVOKED = "revoked_at is not null or password_hash is not null"


def registry_devices(db: Path, where: str) -> dict[str, LostDevice]:
    """The device rows SQLite can still read from a registry file (damaged ones: whatever it reads)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute(f"select id, name, device_type from devices_devices where {where}").fetchall()
            return {r[0]: LostDevice(r[0], r[1] or "", r[2] or "", "damaged registry") for r in rows}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def compare(known: dict[str, LostDevice], damaged: Path | None, restored: Path) -> list[LostDevice]:
    """Devices known to the broker (or readable in the damaged file) that the restored registry lacks:
    no row, or a row without the login the device was given (confirmed, activated after the snapshot).
    A row the restored registry holds as revoked is never lost."""
    found = dict(known)
    if damaged is not None:
        for dev_id, dev in registry_devices(damaged, ACTIVE).items():
            if dev_id in found and not found[dev_id].name:
                found[dev_id] = LostDevice(dev_id, dev.name, dev.device_type or found[dev_id].device_type,
                                           found[dev_id].found_in)
            found.setdefault(dev_id, dev)
    kept = registry_devices(restored, LOGIN_OR_REVOKED)      # revoked rows count as kept: never resurrected
    return sorted((d for d in found.values() if d.id not in kept), key=lambda d: (d.name, d.id))


class LostReport:
    """`<data>/damaged/lost.json`: the devices a repair lost, until a person acknowledges them."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "damaged" / "lost.json"

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def record(self, devices: list[LostDevice], reason: str, unchecked: str = "") -> None:
        """Add to what is not yet acknowledged (two repairs in a row lose the union). `unchecked`: why
        nothing could be compared (the broker's files are damaged too): also reported until acknowledged."""
        old = {d["id"]: d for d in self.pending_rows()}
        rows = old | {d.id: asdict(d) for d in devices}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"time": time.time(), "reason": reason, "devices": list(rows.values()),
                                            "unchecked": unchecked, "acknowledged": None}, indent=1), self.data_dir)
        log.error("the repair lost %d device(s), %s: %s%s", len(devices), PAIR_AGAIN,
                  ", ".join(d.label() for d in devices), f"; {unchecked}" if unchecked else "")

    def pending_rows(self) -> list[dict]:
        data = self._read()
        return [] if data.get("acknowledged") else list(data.get("devices", []))

    def pending(self) -> list[LostDevice]:
        out = []
        for row in self.pending_rows():
            try:
                out.append(LostDevice(**row))
            except TypeError:
                continue
        return out

    def reason(self) -> str:
        return str(self._read().get("reason", ""))

    def unchecked(self) -> str:
        data = self._read()
        return "" if data.get("acknowledged") else str(data.get("unchecked") or "")

    def acknowledge(self) -> int:
        """A person has seen the list (and paired again what they wanted). Returns how many were listed."""
        data = self._read()
        listed = len(self.pending_rows())
        if listed or self.unchecked():
            atomic_write(self.path, json.dumps(data | {"acknowledged": time.time()}, indent=1), self.data_dir)
            log.warning("lost devices acknowledged (%d)", listed)
        return listed

    def state(self) -> dict:
        devices, unchecked = self.pending(), self.unchecked()
        text = "; ".join(t for t in (
            devices and f"{len(devices)} device(s) {PAIR_AGAIN}: " + ", ".join(d.label() for d in devices),
            unchecked and f"devices paired after the last snapshot cannot be named: {unchecked}") if t)
        return {"devices": [asdict(d) | {"label": d.label()} for d in devices],
                "reason": self.reason() if text else "", "unchecked": unchecked, "text": text}
