"""Wyoming clients a person allowed, by address, and the ones waiting for a person.

Wyoming has no login, so the one thing Hearth can approve is the client's address. A client from
an address nobody allowed gets `describe` answered and an error for everything else; its
address shows as *waiting* on the Devices page and in `hearth devices wyoming list` until a
person allows it (`allow`) or it is not heard from for `[wyoming] waiting_ttl_s`. At most
`[wyoming] max_waiting` addresses wait at once, one entry per address however often it knocks.

Rows live in the registry (`devices_wyoming`), so the command line changes them from another
process; every allow or revoke bumps the registry's generation, the running service's watcher
calls `refresh()`, and a revoked address's open connections are cut (`on_revoked`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from appliance.state.config import WyomingSettings
from appliance.devices.errors import BadSetting, UnknownClient
from appliance.devices.registry import Registry
from appliance.state.store import Store

log = logging.getLogger(__name__)
WAITING, ALLOWED = "waiting", "allowed"
TABLE = "devices_wyoming"
WRITE_EVERY_S = 30.0        # a waiting address's row is written at most this often, however often it knocks
WANTS = ("transcribe", "synthesize", "detect", "audio")     # what the page says a waiting client asked for


@dataclass(frozen=True)
class WyomingClient:
    address: str
    state: str                  # waiting | allowed
    first_seen: float | None = None
    last_seen: float | None = None
    asks: int = 0               # refused events (waiting) counted so far
    wants: str = ""             # what it asked for, e.g. "transcribe,synthesize"
    allowed_at: float | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: dict) -> "WyomingClient":
        return cls(**{f.name: row.get(f.name) for f in fields(cls) if f.name in row})


def normalize(address: str) -> str:
    """One spelling per host: '::ffff:192.168.1.5' is '192.168.1.5'. BadSetting if not an IP address."""
    try:
        ip = ipaddress.ip_address(str(address).strip().strip("[]"))
    except ValueError:
        raise BadSetting(f"'{str(address)[:64]}' is not an IP address (e.g. 192.168.1.5)") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def want_of(event_type: str) -> str:
    """What a refused event asked for, from a fixed list (the type itself is the client's text);
    "" for describe, which is answered."""
    if event_type == "describe":
        return ""
    return next((want for want in WANTS if event_type.startswith(want)), "other")


class WyomingAccess:
    """`service.wyoming_access`: allow(address), revoke(address), allowed(), waiting(), and the server's checks."""

    def __init__(self, store: Store, registry: Registry, settings: WyomingSettings):
        self.store = store
        self.registry = registry
        self.settings = settings
        self.on_revoked: list[Callable[[str], None]] = []      # fn(address): cut its open connections
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()     # one refresh at a time: the newest read wins
        self._allowed: frozenset[str] = frozenset()
        self._knocks: dict[str, tuple[float, int, set]] = {}  # address -> (last write, asks since, wants since)
        self._written_wants: dict[str, set] = {}                # address -> wants already in its row (a new one is written at once)
        self.refresh()

    # what a person does (web page, command line)
    def allow(self, address: str) -> WyomingClient:
        address = normalize(address)
        now = time.time()
        with self.store.transaction() as tx:
            rows = list(tx.query(f"select * from {TABLE} where address = ?", [address]))
            row = {"address": address, "state": ALLOWED, "allowed_at": now,
                   "first_seen": rows[0]["first_seen"] if rows else None,
                   "last_seen": rows[0]["last_seen"] if rows else None,
                   "asks": rows[0]["asks"] if rows else 0, "wants": rows[0]["wants"] if rows else ""}
            tx[TABLE].upsert(row, pk="address")
            self.registry.bump(tx)
        self.refresh()
        return WyomingClient.from_row(row)

    def revoke(self, address: str) -> WyomingClient:
        """Take back an allowed address (its connections are cut) or dismiss a waiting one."""
        address = normalize(address)
        with self.store.transaction() as tx:
            rows = list(tx.query(f"select * from {TABLE} where address = ?", [address]))
            if not rows:
                raise UnknownClient(f"{address} is neither allowed nor waiting (see: hearth devices wyoming list)")
            tx.execute(f"delete from {TABLE} where address = ?", [address])
            self.registry.bump(tx)
        with self._lock:
            self._knocks.pop(address, None)
            self._written_wants.pop(address, None)
        self.refresh()
        return WyomingClient.from_row(rows[0])

    def allowed(self) -> list[WyomingClient]:
        rows = self.store.db.query(f"select * from {TABLE} where state = ? order by allowed_at", [ALLOWED])
        return [WyomingClient.from_row(r) for r in rows]

    def waiting(self) -> list[WyomingClient]:
        rows = self.store.db.query(f"select * from {TABLE} where state = ? and last_seen > ? order by first_seen",
                                   [WAITING, time.time() - self.settings.waiting_ttl_s])
        return [WyomingClient.from_row(r) for r in rows]

    # what the Wyoming server asks (its event loop thread: memory only)
    def is_allowed(self, address: str) -> bool:
        return address in self._allowed

    def knock(self, address: str, event_type: str) -> bool:
        """Count a refused event from `address`; True when its waiting entry is due to be written
        (`record`, off the event loop): new, asking for something new, or not written for WRITE_EVERY_S."""
        now = time.monotonic()
        with self._lock:
            last, asks, wants = self._knocks.get(address, (0.0, 0, set()))
            want = want_of(event_type)
            new_want = bool(want) and want not in self._written_wants.get(address, ())
            if want:
                wants.add(want)
            due = not last or now - last >= WRITE_EVERY_S or new_want
            self._knocks[address] = (now if due else last, asks + 1, wants)
            if len(self._knocks) > 4 * max(self.settings.max_waiting, 64):     # bounded, whoever knocks
                self._knocks = {a: k for a, k in self._knocks.items() if now - k[0] < WRITE_EVERY_S}
                self._written_wants = {a: w for a, w in self._written_wants.items() if a in self._knocks}
            return due

    def record(self, address: str) -> bool:
        """Write the waiting entry for `address` (one per address); False when the list is full."""
        with self._lock:
            _, asks, wants = self._knocks.get(address, (0.0, 0, set()))
            if address in self._knocks:
                self._knocks[address] = (self._knocks[address][0], 0, set())
            self._written_wants.setdefault(address, set()).update(wants)
        now = time.time()
        with self.store.transaction() as tx:
            tx.execute(f"delete from {TABLE} where state = ? and last_seen <= ?",
                       [WAITING, now - self.settings.waiting_ttl_s])
            rows = list(tx.query(f"select * from {TABLE} where address = ?", [address]))
            if rows and rows[0]["state"] == ALLOWED:
                return True
            if rows:
                had = set(filter(None, rows[0]["wants"].split(",")))
                tx[TABLE].update(address, {"last_seen": now, "asks": rows[0]["asks"] + asks,
                                           "wants": ",".join(sorted(had | wants))})
                return True
            if tx[TABLE].count_where("state = ?", [WAITING]) >= self.settings.max_waiting:
                log.warning("Wyoming client %s not listed as waiting: %d addresses already wait "
                            "([wyoming] max_waiting)", address, self.settings.max_waiting)
                return False
            tx[TABLE].insert({"address": address, "state": WAITING, "first_seen": now, "last_seen": now,
                              "asks": asks, "wants": ",".join(sorted(wants))})
        log.info("Wyoming client %s is waiting for approval (Devices page, or: hearth devices wyoming allow %s)",
                 address, address)
        return True

    # the running service
    def refresh(self) -> None:
        """Re-read the allowed addresses (after a change here or by the command line); cut the revoked."""
        with self._refreshing:
            now = frozenset(r["address"] for r in self.store.db.query(
                f"select address from {TABLE} where state = ?", [ALLOWED]))
            gone, self._allowed = self._allowed - now, now
        for address in sorted(gone):
            for cut in self.on_revoked:
                cut(address)
