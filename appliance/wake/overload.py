"""How far behind the wake word thread is, what it can take, and which streams pay when it cannot
keep up (appliance/wake/worker.py calls these on its own thread; other threads only read).

- lag: the age of the oldest audio waiting for the detector, its peak over PEAK_S;
- cost: the wake thread's seconds per speaking stream and 80 ms chunk (an average of what passes
  measure, catch-ups left out), so PASS_S / cost speaking streams fit in real time;
- a new stream is refused (`busy`) while the lag is over BUSY_LAG_S or one more speaking stream
  would take the load over TARGET_LOAD;
- once the lag has been over SHED_LAG_S for SHED_AFTER_S and the measured capacity is short, the
  newest listening streams (opened in the last NEW_S) are ended, down to TARGET_LOAD of capacity, so
  the backlog drains; streams that just woke or are in a session never are.
"""

from __future__ import annotations

import time

from appliance.wake.stream import ARBITRATING, LISTENING, Stream

PASS_S = 0.08                # one chunk of every stream
BUSY_LAG_S = 0.5             # this far behind: new streams are refused with busy
SHED_LAG_S = 1.0             # this far behind ...
SHED_AFTER_S = 2.0           # ... this long (not a burst such as catch-ups): the newest streams are ended
SHED_EVERY_S = 1.0           # ... at most this often (the backlog drains meanwhile)
NEW_S = 30.0                 # a stream opened this recently is new
TARGET_LOAD = 0.8            # the share of the wake thread's time speaking streams may take
PEAK_S = 10.0                # the lag's peak shown is over this long


def speaking(streams: list[Stream]) -> int:
    """Streams the detector scores every chunk: loud ones (gate open), micro models, the just woken."""
    return sum(1 for s in streams if s.micro is not None or s.gate_open or s.mode == ARBITRATING)


class Overload:
    def __init__(self, metrics):
        self.lag_s = 0.0
        self.lag_peak = (0.0, 0.0)               # (lag, when)
        self.step_cost: float | None = None      # seconds per speaking stream and chunk
        self._behind_since: float | None = None  # since when the lag is over SHED_LAG_S
        self._shed_at = (0.0, 0.0)               # (when, lag then): the last time streams were ended
        metrics.gauge("hearth_wake_lag_seconds", lambda: round(self.lag_s, 3))
        metrics.gauge("hearth_wake_lag_peak_seconds", lambda: round(self.peak(), 3))
        metrics.gauge("hearth_wake_step_seconds", lambda: round(self.step_cost or 0.0, 5))

    def measure(self, oldest: float) -> None:
        """`oldest`: when the oldest audio still waiting for the detector arrived (monotonic)."""
        now = time.monotonic()
        self.lag_s = max(0.0, now - oldest)
        if self.lag_s <= SHED_LAG_S:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = now
        if self.lag_s >= self.lag_peak[0] or now - self.lag_peak[1] > PEAK_S:
            self.lag_peak = (self.lag_s, now)

    def peak(self) -> float:
        """The highest lag in the last PEAK_S (the Overview's figure)."""
        lag, when = self.lag_peak
        return lag if time.monotonic() - when <= PEAK_S else self.lag_s

    def cost(self, seconds: float, streams: int) -> None:
        """A pass scored `streams` speaking streams in `seconds`."""
        if streams:
            each = seconds / streams
            self.step_cost = each if self.step_cost is None else 0.9 * self.step_cost + 0.1 * each

    def load(self, streams: list[Stream], extra: int = 0) -> float:
        """The share of the wake thread's time the speaking streams (and `extra` more) take, as measured."""
        return (speaking(streams) + extra) * (self.step_cost or 0.0) / PASS_S

    def refuse_new(self, streams: list[Stream]) -> str | None:
        """Why a new stream is refused now (busy), or None."""
        if self.lag_s > BUSY_LAG_S or self.load(streams, extra=1) > TARGET_LOAD:
            return (f"the wake word thread is {self.lag_s * 1000:.0f} ms behind, {self.load(streams):.0%} loaded: "
                    "no new stream now; start it again in a few seconds")
        return None

    def to_shed(self, streams: list[Stream]) -> tuple[list[Stream], str]:
        """The newest listening streams to end, and what to log; nothing while the backlog drains."""
        now = time.monotonic()
        last, lag_then = self._shed_at
        if (self._behind_since is None or now - self._behind_since < SHED_AFTER_S or now - last < SHED_EVERY_S
                or (last and self.lag_s < 0.9 * lag_then) or not self.step_cost):
            return [], ""
        fits = int(PASS_S / self.step_cost)
        loud = speaking(streams)
        if loud <= fits:
            return [], ""            # they fit: the backlog (catch-ups, a stall) drains by itself
        short = loud - int(TARGET_LOAD * fits)
        new = sorted((s for s in streams if s.mode == LISTENING and now - s.opened < NEW_S),
                     key=lambda s: s.opened, reverse=True)[:short]
        if new:
            self._shed_at = (now, self.lag_s)
        return new, (f"the wake word thread is {self.lag_s:.1f} s behind ({loud} speaking streams, "
                     f"{self.step_cost * 1000:.1f} ms each a chunk: {fits} fit): ending {len(new)} new stream(s) with busy")
