"""Only the nearest device answers: detections of one utterance are collected for a short window
per group (a room, or the whole house), then the strongest wins (model score, then how loud the
wake word was at that device) and every other device is told to stand down. A detection that
arrives within one window after its group was decided also stands down (a slow device hearing
the same words)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Claim:
    device: str
    stream: str
    score: float
    level_dbfs: float
    at: float                        # monotonic time of the detection

    @property
    def strength(self) -> tuple[float, float]:
        return (round(self.score, 3), self.level_dbfs)


@dataclass
class Round:
    group: str
    opened: float
    claims: list[Claim] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    group: str
    winner: Claim | None             # None: a late claim; the group's earlier winner is `previous`
    losers: tuple[Claim, ...]
    previous: str = ""


class Arbiter:
    def __init__(self, window_s: float):
        self.window = window_s
        self.rounds: dict[str, Round] = {}
        self.decided: dict[str, tuple[float, str]] = {}     # group -> (when, winner device)

    def claim(self, group: str, claim: Claim) -> Decision | None:
        """Add a detection; a late one is decided at once (stand down), others wait for `due()`."""
        last = self.decided.get(group)
        if group not in self.rounds and last and claim.at - last[0] < self.window:
            return Decision(group, None, (claim,), previous=last[1])
        rnd = self.rounds.setdefault(group, Round(group, claim.at))
        rnd.claims = [c for c in rnd.claims if c.device != claim.device] + [claim]
        return None

    def next_deadline(self) -> float | None:
        return min((r.opened + self.window for r in self.rounds.values()), default=None)

    def due(self, now: float) -> list[Decision]:
        """Close every round whose window has passed; the strongest claim in each wins."""
        out = []
        for group, rnd in list(self.rounds.items()):
            if now < rnd.opened + self.window:
                continue
            del self.rounds[group]
            ranked = sorted(rnd.claims, key=lambda c: c.strength, reverse=True)
            self.decided[group] = (now, ranked[0].device)
            out.append(Decision(group, ranked[0], tuple(ranked[1:])))
        return out

    def forget(self, device: str) -> None:
        """A device's stream ended: drop its pending claims."""
        for group, rnd in list(self.rounds.items()):
            rnd.claims = [c for c in rnd.claims if c.device != device]
            if not rnd.claims:
                del self.rounds[group]
