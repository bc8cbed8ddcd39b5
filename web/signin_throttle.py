"""Sign-in throttling: slows password guessing without locking the right password out.

- Per address (IPv6: per /64): the first FREE_FAILURES wrong passwords cost nothing, then each
  further attempt waits FIRST_DELAY_S, doubling to MAX_DELAY_S. A right password from that
  address clears its record. Forgotten FORGET_S after its last failure.
- Per account: ACCOUNT_BUDGET guesses from browsers Hearth does not know, refilled at one per
  ACCOUNT_REFILL_S, across all addresses (so many addresses do not multiply the guesses).
- A browser that signed in before carries a signed "known browser" cookie (bound to the password:
  a reset voids it). It skips the address delays and the account budget, so the owner still gets
  in while someone on the same network (the same NAT address) is guessing; it has its own budget
  of KNOWN_FAILURES wrong passwords, after which it counts as unknown again.

Every attempt is counted when it is admitted, before the password is checked (a right password
gives it back), so parallel requests cannot check more passwords than the budget allows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from web.peers import peer_key

FREE_FAILURES = 5
FIRST_DELAY_S = 2.0
MAX_DELAY_S = 60.0
FORGET_S = 900.0
ACCOUNT_BUDGET = 30
ACCOUNT_REFILL_S = 60.0
KNOWN_FAILURES = 5
MAX_RECORDS = 4096


@dataclass
class _Record:
    failures: int = 0
    next_allowed: float = 0.0
    last: float = 0.0


@dataclass
class Ticket:
    """An admitted attempt: already counted as a failure until `succeeded` gives it back."""
    address: str
    known: str = ""
    from_budget: bool = False
    _done: bool = field(default=False, repr=False)


class Throttle:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._addresses: dict[str, _Record] = {}
        self._known: dict[str, int] = {}         # known-browser id -> wrong passwords
        self._tokens = float(ACCOUNT_BUDGET)
        self._refilled = clock()

    def admit(self, address: str, known: str = "") -> Ticket | float:
        """A Ticket to check one password, or the seconds to wait before trying again."""
        now = self.clock()
        with self._lock:
            if known and self._known.get(known, 0) < KNOWN_FAILURES:
                self._known[known] = self._known.get(known, 0) + 1
                return Ticket(address, known=known)
            key = peer_key(address)
            self._prune(now)
            record = self._addresses.get(key)
            if record is None or now - record.last > FORGET_S:
                record = self._addresses[key] = _Record()
            if now < record.next_allowed:
                return record.next_allowed - now
            self._refill(now)
            if self._tokens < 1:
                return (1 - self._tokens) * ACCOUNT_REFILL_S
            self._tokens -= 1
            record.failures += 1
            record.last = now
            if record.failures >= FREE_FAILURES:
                record.next_allowed = now + min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (record.failures - FREE_FAILURES))
            return Ticket(address, from_budget=True)

    def succeeded(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket._done:
                return
            ticket._done = True
            if ticket.known:
                self._known.pop(ticket.known, None)
                return
            self._addresses.pop(peer_key(ticket.address), None)
            if ticket.from_budget:
                self._tokens = min(float(ACCOUNT_BUDGET), self._tokens + 1)

    def _refill(self, now: float) -> None:
        self._tokens = min(float(ACCOUNT_BUDGET), self._tokens + (now - self._refilled) / ACCOUNT_REFILL_S)
        self._refilled = now

    def _prune(self, now: float) -> None:
        if len(self._addresses) < MAX_RECORDS:
            return
        self._addresses = {k: r for k, r in self._addresses.items() if now - r.last < FORGET_S}
        while len(self._addresses) >= MAX_RECORDS:          # still full: forget the oldest
            self._addresses.pop(min(self._addresses, key=lambda k: self._addresses[k].last))
        if len(self._known) > MAX_RECORDS:
            self._known.clear()


class KnownBrowsers:
    """The signed cookie value that marks a browser which signed in before."""

    def __init__(self, key: bytes):
        self.key = key

    def issue(self) -> str:
        browser = secrets.token_urlsafe(16)
        return f"{browser}.{self._mac(browser)}"

    def check(self, value: str | None) -> str:
        """The browser's id when the cookie is genuine (for the current password), else ''."""
        browser, _, mac = (value or "").partition(".")
        if self.key and browser and mac and hmac.compare_digest(mac, self._mac(browser)):
            return browser
        return ""

    def _mac(self, browser: str) -> str:
        return hmac.new(self.key, browser.encode(), hashlib.sha256).hexdigest()[:32]
