"""Fair shares of the voice pipeline: per-client lanes served in turn, and an audio rate guard.

A *client* is whoever sends speech: an MQTT device (its login), a Hermes site (`hermes:<site>`),
a Wyoming peer address (`wyoming:<addr>`: twenty connections from one address are one client),
a Mycroft device on `/v1/stt` (its device id). Every queue in front of an engine (the session
manager's inbox, the decode queue, the speaker's queue and its engine) keeps one FIFO lane per
client and serves the lanes in turn, so a client's backlog only ever delays that client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    """One FIFO lane per client, popped in turn (round robin). Not thread-safe: the owner locks."""

    def __init__(self):
        self._lanes: "OrderedDict[str, deque[T]]" = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def count(self, client: str) -> int:
        lane = self._lanes.get(client)
        return len(lane) if lane else 0

    def push(self, client: str, item: T) -> None:
        self._lanes.setdefault(client, deque()).append(item)
        self._count += 1

    def pop(self) -> T:
        """The oldest item of the client whose turn it is; that client then goes to the back."""
        client, lane = next(iter(self._lanes.items()))
        item = lane.popleft()
        del self._lanes[client]
        if lane:
            self._lanes[client] = lane
        self._count -= 1
        return item

    def remove(self, drop: Callable[[T], bool]) -> int:
        removed = 0
        for client in list(self._lanes):
            lane = self._lanes[client]
            keep = deque(item for item in lane if not drop(item))
            removed += len(lane) - len(keep)
            if keep:
                self._lanes[client] = keep
            else:
                del self._lanes[client]
        self._count -= removed
        return removed


class Turns:
    """Turns at a shared engine (Piper): threads waiting for it are served one piece each, clients
    in turn, so twenty connections from one address wait behind each other, not in front of a device."""

    def __init__(self):
        self._cond = threading.Condition()
        self._waiting: Lanes[object] = Lanes()
        self._busy = False
        self._granted: object | None = None

    @contextmanager
    def turn(self, client: str) -> Iterator[None]:
        with self._cond:
            if not self._busy:
                self._busy = True
            else:
                ticket = object()
                self._waiting.push(client, ticket)
                while self._granted is not ticket:
                    self._cond.wait()
                self._granted = None
        try:
            yield
        finally:
            with self._cond:
                if len(self._waiting):
                    self._granted = self._waiting.pop()      # stays busy: handed straight to the next
                    self._cond.notify_all()
                else:
                    self._busy = False


PASS, REFUSE, DROP = "pass", "refuse", "drop"
UNKNOWN_FRAMES_PER_S = 50    # frames per device and second for sessions that are not open


class TooFast(RuntimeError):
    """A client sends (or uploads) audio faster than real time allows."""


class AudioGuard:
    """Audio faster than real time is refused: a token bucket per open session, checked where the
    audio enters (the network thread, the Wyoming loop), so the excess of a flooding client is
    dropped before it costs anything. A session may run `factor` times faster than real time after
    a burst of `burst_s` seconds (network jitter, a pre-roll buffer sent at once). A client refused
    for it opens no session for `cooldown_s`. Whole-file uploads (/v1/stt) draw on one bucket per
    client (`charge`)."""

    def __init__(self, factor: float, burst_s: float, cooldown_s: float = 0.0):
        self.factor = factor
        self.burst_s = burst_s
        self.cooldown_s = cooldown_s
        self._refused: dict[str, float] = {}         # client -> when it was last refused
        self._uploads: dict[str, list[float]] = {}   # client -> [seconds of credit, last refill]
        self._lock = threading.Lock()
        # (device, session) -> [client, seconds of credit, last refill, bytes per second, refused]
        self._open: dict[tuple[str, str], list] = {}
        self._unknown: dict[str, list] = {}          # device -> [frames this second, second]

    def open(self, key: tuple[str, str], client: str, bytes_per_s: int, at: float | None = None) -> bool:
        """Start metering a session; False if it is already metered (a repeated start changes nothing).
        `at`: when its audio began to arrive (monotonic), if not now (see allow)."""
        with self._lock:
            if key in self._open:
                return False
            self._open[key] = [client, self.burst_s, time.monotonic() if at is None else at, max(1, bytes_per_s), False]
            return True

    def close(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._open.pop(key, None)

    def client(self, key: tuple[str, str]) -> str | None:
        entry = self._open.get(key)
        return entry[0] if entry else None

    def allow(self, key: tuple[str, str], size: int, at: float | None = None) -> str:
        """PASS; REFUSE the first time a session goes over (end it); DROP after that, and for
        sessions nobody metered (the session manager reports those once).

        `at`: when the frame arrived from the network (monotonic), for audio that waited in Hearth's
        own queues before it got here (the wake thread): the rate is the wire's, never the queue's."""
        if self.factor <= 0:
            return PASS
        with self._lock:
            now = time.monotonic()
            arrived = now if at is None else min(at, now)
            entry = self._open.get(key)
            if entry is None:
                return self._unmetered(key[0], now)
            if entry[4]:
                return DROP
            entry[1] = min(self.burst_s, entry[1] + max(0.0, arrived - entry[2]) * self.factor)
            entry[2] = max(entry[2], arrived)
            entry[1] -= size / entry[3]
            if entry[1] >= 0:
                return PASS
            entry[4] = True
            if len(self._refused) > 10000:
                self._refused.clear()
            self._refused[entry[0]] = now
            return REFUSE

    def cooling(self, client: str) -> float:
        """Seconds until a client refused for flooding may open a session again (0: it may)."""
        with self._lock:
            at = self._refused.get(client)
            if at is None:
                return 0.0
            left = at + self.cooldown_s - time.monotonic()
            if left <= 0:
                del self._refused[client]
            return max(0.0, left)

    def charge(self, client: str, seconds: float) -> None:
        """A whole utterance at once (an upload): TooFast while the client is in debt. Credit refills at
        `factor` seconds of audio per second up to `burst_s`; any one utterance may overdraw it, so a
        device can always send its longest, and a flood gets `factor` x real time on average."""
        if self.factor <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._uploads) > 10000:
                self._uploads.clear()
            credit = self._uploads.setdefault(client, [self.burst_s, now])
            credit[0] = min(self.burst_s, credit[0] + (now - credit[1]) * self.factor)
            credit[1] = now
            if credit[0] < 0:
                raise TooFast(f"audio is coming faster than {self.factor:g}x real time; "
                              f"try again in {-credit[0] / self.factor:.1f} s")
            credit[0] -= seconds

    def _unmetered(self, device: str, now: float) -> str:
        """Frames for sessions that are not open: a few per second reach the session manager (which
        says unknown_session once per session), the rest of such a flood stops here."""
        second = int(now)
        seen = self._unknown.get(device)
        if seen is None or seen[1] != second:
            if len(self._unknown) > 10000:
                self._unknown.clear()
            seen = self._unknown[device] = [0, second]
        seen[0] += 1
        return PASS if seen[0] <= UNKNOWN_FRAMES_PER_S else DROP

    def __len__(self) -> int:
        return len(self._open)


class FairInbox:
    """A worker thread's inbox: its own urgent items first (results, stop), then the clients'
    messages, one lane per client in turn. Order within a client is kept (start, audio, end)."""

    def __init__(self, per_client: int):
        self.per_client = per_client
        self._cond = threading.Condition()
        self._urgent: deque = deque()
        self._lanes: Lanes = Lanes()
        self.dropped = 0

    def put(self, client: str, item) -> bool:
        """False (and the item dropped) when that client already has `per_client` items waiting."""
        with self._cond:
            if self._lanes.count(client) >= self.per_client:
                self.dropped += 1
                return False
            self._lanes.push(client, item)
            self._cond.notify()
            return True

    def put_urgent(self, item) -> None:
        with self._cond:
            self._urgent.append(item)
            self._cond.notify()

    def get(self, timeout: float):
        """The next item, or None after `timeout` seconds with nothing."""
        with self._cond:
            if not self._urgent and not len(self._lanes):
                self._cond.wait(timeout)
            if self._urgent:
                return self._urgent.popleft()
            if len(self._lanes):
                return self._lanes.pop()
            return None

    def __len__(self) -> int:
        with self._cond:
            return len(self._urgent) + len(self._lanes)


def peer_client(protocol: str, writer) -> str:
    """The client key of a TCP peer (an asyncio StreamWriter): `<protocol>:<address>`, any port."""
    peer = writer.get_extra_info("peername")
    return f"{protocol}:{peer[0] if peer else 'unknown'}"


REFUSALS = {"too_fast", "too_many_sessions", "busy"}      # a client refused its share of speech


def shed(writer, code: str | None, seconds: float) -> None:
    """A TCP client (Wyoming) refused its share: stop reading what it keeps sending (TCP pushes
    back, so none of it is parsed) and close the connection after `seconds`."""
    if code in REFUSALS:
        writer.transport.pause_reading()
        asyncio.get_running_loop().call_later(seconds, writer.close)
