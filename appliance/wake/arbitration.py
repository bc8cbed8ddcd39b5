"""Only the nearest device answers: detections of one utterance are collected for a short window
per group (a room, or the whole house), then the strongest wins (model score, with scores within
SCORE_TIE counted as equal, then how loud the wake word was at that device) and every other device is told to stand down. A detection that
arrives within one window after its group was decided also stands down (a slow device hearing
the same words). A claim's score is the peak the device reaches while the window is open."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SCORE_TIE = 0.05             # scores this close count as equal: then the louder device wins


@dataclass(frozen=True)
class Claim:
    device: str
    stream: str
    score: float
    level_dbfs: float
    at: float                        # monotonic time of the detection


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

    def raise_score(self, group: str, device: str, score: float) -> None:
        """A device still hearing the wake word while its group waits: keep its peak score."""
        rnd = self.rounds.get(group)
        if rnd is not None:
            rnd.claims = [replace(c, score=score) if c.device == device and score > c.score else c for c in rnd.claims]

    def next_deadline(self) -> float | None:
        return min((r.opened + self.window for r in self.rounds.values()), default=None)

    def due(self, now: float) -> list[Decision]:
        """Close every round whose window has passed; the strongest claim in each wins."""
        out = []
        for group, rnd in list(self.rounds.items()):
            if now < rnd.opened + self.window:
                continue
            del self.rounds[group]
            best = max(c.score for c in rnd.claims)
            ranked = sorted(rnd.claims, key=lambda c: (c.score >= best - SCORE_TIE, c.level_dbfs, c.score), reverse=True)
            self.decided[group] = (now, ranked[0].device)
            out.append(Decision(group, ranked[0], tuple(ranked[1:])))
        return out

    def forget(self, device: str) -> None:
        """A device's stream ended: drop its pending claims."""
        for group, rnd in list(self.rounds.items()):
            rnd.claims = [c for c in rnd.claims if c.device != device]
            if not rnd.claims:
                del self.rounds[group]
