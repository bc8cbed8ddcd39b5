"""Who lends what: each paired helper's offer, whether it is online, and what it has done.

Only a helper the registry knows (device type `helper`, not revoked) counts; an offer from any
other login, or one that speaks another jobs protocol, is ignored (and shown as such). Offers
arrive on the network thread; everything here is a dict behind one lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mqtt.jobs import JOBS_VERSION, HelperOffer


@dataclass
class HelperState:
    id: str
    offer: HelperOffer | None = None
    online: bool = False
    problem: str = ""                # e.g. another jobs protocol: shown, never sent work
    since: float = field(default_factory=time.time)
    jobs: int = 0                    # results accepted
    decode_ms: float = 0.0           # sum of their decode times (the helper's own clock)
    round_trip_ms: float = 0.0       # sum of send -> result, on the box's clock
    late: int = 0
    ignored: int = 0                 # garbage, floods, answers for jobs nobody sent
    not_given: int = 0               # answers for jobs the box sent to another: flagged on the Overview

    def public(self, name: str = "") -> dict:
        o = self.offer
        return {"id": self.id, "name": name, "online": self.online, "problem": self.problem,
                "engine": o.engine if o else "", "models": list(o.models) if o else [],
                "languages": list(o.languages) if o else [], "device": o.device if o else "",
                "capacity": o.capacity if o else 0, "jobs": self.jobs,
                "mean_ms": round(self.round_trip_ms / self.jobs, 1) if self.jobs else None,
                "mean_decode_ms": round(self.decode_ms / self.jobs, 1) if self.jobs else None,
                "late": self.late, "ignored": self.ignored, "not_given": self.not_given,
                "flagged": self.not_given > 0}


class Roster:
    def __init__(self, known: Callable[[], dict[str, str]]):
        self._known = known          # () -> {helper id: name}, from the registry
        self._lock = threading.Lock()
        self._helpers: dict[str, HelperState] = {}
        self._names: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> list[str]:
        """Take the registry's list again (after a pairing or a revoke); the helpers that left."""
        names = self._known()
        with self._lock:
            gone = sorted(set(self._names) - set(names))
            self._names = names
            for h in set(self._helpers) - set(names):
                del self._helpers[h]
            return gone

    def is_helper(self, helper: str) -> bool:
        return helper in self._names

    def state(self, helper: str) -> HelperState:
        with self._lock:
            return self._helpers.setdefault(helper, HelperState(helper))

    def on_offer(self, helper: str, offer: HelperOffer | None, problem: str = "") -> None:
        with self._lock:
            s = self._helpers.setdefault(helper, HelperState(helper))
            if offer is not None and offer.jobs_version != JOBS_VERSION:
                problem = (f"speaks jobs protocol {offer.jobs_version}, this box {JOBS_VERSION}: "
                           "update Hearth on the helper")
            s.offer, s.problem = offer, problem
            s.online = bool(offer and offer.online and not problem)
            s.since = time.time()

    def serving(self, model: str) -> list[str]:
        """Online helpers that offer `model`."""
        with self._lock:
            return [h for h, s in self._helpers.items()
                    if s.online and s.offer and model in s.offer.models and h in self._names]

    def more_accurate_than(self, model: str) -> str | None:
        """The most accurate known model (appliance/stt/models.py) an online helper offers, when it
        hears better than `model`; None when no helper offers one."""
        from appliance.stt.models import CATALOGUE
        own = CATALOGUE[model].accuracy_rank if model in CATALOGUE else len(CATALOGUE)
        with self._lock:
            offered = {m for h, s in self._helpers.items() if s.online and s.offer and h in self._names
                       for m in s.offer.models if m in CATALOGUE and CATALOGUE[m].accuracy_rank < own}
        return min(offered, key=lambda m: CATALOGUE[m].accuracy_rank, default=None)

    def capacities(self, model: str) -> dict[str, int]:
        """Online helpers that offer `model`, with the jobs each takes at once."""
        with self._lock:
            return {h: s.offer.capacity for h, s in self._helpers.items()
                    if s.online and s.offer and model in s.offer.models and h in self._names}

    def record(self, helper: str, decode_ms: float, round_trip_ms: float) -> None:
        with self._lock:
            s = self._helpers.setdefault(helper, HelperState(helper))
            s.jobs += 1
            s.decode_ms += decode_ms
            s.round_trip_ms += round_trip_ms

    def count(self, helper: str, what: str) -> None:
        with self._lock:
            s = self._helpers.setdefault(helper, HelperState(helper))
            setattr(s, what, getattr(s, what) + 1)

    def list(self) -> list[dict]:
        with self._lock:
            names = dict(self._names)
            states = {h: self._helpers.get(h) or HelperState(h) for h in names}
            return [states[h].public(names[h]) for h in sorted(names, key=lambda h: names[h])]
