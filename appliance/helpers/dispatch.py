"""Final decodes as jobs on the broker, with the box's own engine as the net under them.

`Dispatcher` stands where the decoder stood (same submit/forget/engine/depth), so the session
manager, the HTTP STT edge and Wyoming need no change. A final or speculative decode of a
non-streaming engine becomes a job when a helper that offers the asked model is online; partials,
streams and everything while no helper is online stay on the box's own decoder, with no broker
round trip.

Each job goes to one taker the box chooses (the least busy for its capacity, in turn among equals):
a helper online with the model, on that helper's own job topic, or the box's own engine. Only that
helper's login can read the job and only its answers count: a `taken` or `result` from any other
login, even one that learnt the job's id, is ignored and counted against that login.

Nothing is lost and nothing is doubled:
- a job its helper does not say it took within `helpers.take_ms`, or that it does not answer within
  `helpers.deadline_ms`, or that its taker says it failed, goes to the box's own decoder, ahead of
  the queue limits (it was admitted already). The box therefore never waits longer than
  `deadline_ms` plus its own decode.
- each job resolves once, under a lock: the first answer wins (a helper's or the box's); a later
  one is ignored and counted (`late`). An answer for a job that helper was not given, for a job
  nobody sent, or that breaks the contract is ignored and counted; none of them reaches a session.
- a session that ends (its final came from an earlier decode, or it was dropped) forgets its jobs.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from appliance.state.config import HelpersSettings
from appliance.helpers.roster import Roster
from appliance.process.metrics import Metrics
from appliance.stt.decoder import PARTIAL, DecodeJob, Decoder, QueueFull
from mqtt import jobs as wire

log = logging.getLogger(__name__)
BOX = "box"                 # the taker name of the box's own engine
REMEMBER = 4096             # resolved job ids kept, to tell a late answer from a made-up one
RESTING_S = 10.0            # a helper that did not take its job gets no more this long (or until it offers again)


@dataclass
class Pending:
    id: str
    job: DecodeJob
    model: str
    sent: float
    taker: str                  # the helper the box sent it to, or BOX
    acked: bool = False         # the taker said `taken`
    fallback: str = ""          # why the box's own engine got it too ("" while it has not)
    done: bool = False


class Dispatcher:
    def __init__(self, local: Decoder, roster: Roster, settings: Callable[[], HelpersSettings],
                 publish: Callable[[str, bytes, int, bool], None], metrics: Metrics,
                 online: Callable[[], bool] = lambda: True):
        self.local = local
        self.roster = roster
        self.settings = settings
        self.publish = publish
        self.metrics = metrics
        self.online = online                  # the broker connection is up
        self.own_model = getattr(local.engine, "model", "")
        self.model_override: str | None = None  # tests and the bench ask for another model without a restart
        self._pending: dict[str, Pending] = {}
        self._resolved: "OrderedDict[str, str]" = OrderedDict()   # job id -> the taker it was sent to
        self._resting: dict[str, float] = {}       # helper -> until when it gets no jobs (it took none)
        self._turn = 0
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._stop = False
        self._timer = threading.Thread(target=self._watch, name="helpers-deadlines", daemon=True)
        self._timer.start()

    # what the decoder offered
    @property
    def engine(self):
        return self.local.engine

    @property
    def busy(self) -> bool:
        return self.local.busy

    @property
    def partial_busy(self) -> bool:
        return self.local.partial_busy

    @property
    def decodes(self) -> int:
        return self.local.decodes

    @property
    def depth(self) -> int:
        return self.local.depth + len(self._pending)

    @property
    def max_queue(self) -> int:
        return self.local.max_queue

    @property
    def _thread(self) -> threading.Thread:      # the watchdog checks the decode thread
        return self.local._thread

    def asked_model(self) -> str:
        """`helpers.model` when set; else a more accurate model an online helper offers (the box's
        own engine is still the fallback within the deadline); else the box's own model."""
        return (self.model_override or self.settings().model or self.roster.more_accurate_than(self.own_model)
                or self.own_model)

    def submit(self, job: DecodeJob, limit: bool = True) -> None:
        cfg = self.settings()
        model = self.asked_model()
        now = time.monotonic()
        helpers = {} if (job.kind == PARTIAL or job.stream is not None or not cfg.enabled or not self.online()) \
            else {h: c for h, c in self.roster.capacities(model).items() if self._resting.get(h, 0) <= now}
        if not helpers:
            self.local.submit(job, limit)
            return
        if cfg.take_jobs and model == self.own_model:
            helpers[BOX] = 1
        with self._cond:
            waiting = len(self._pending) + self.local.finals_waiting()
            if limit and waiting >= self.local.max_queue:
                raise QueueFull(f"{waiting} decodes are waiting; try again shortly")
            mine = sum(1 for p in self._pending.values() if p.job.lane == job.lane)
            if limit and mine + self.local.finals_waiting(job.lane) >= self.local.max_per_client:
                raise QueueFull(f"{self.local.max_per_client} of your decodes are already waiting; "
                                "wait for their transcripts")
            # unguessable, and only its taker reads it; still, only the taker's answers count
            p = Pending(f"{next(self._ids)}-{secrets.token_hex(8)}", job, model, time.monotonic(),
                        self._choose(helpers))
            self._pending[p.id] = p
            self._cond.notify()
        if p.taker == BOX:
            self._to_box(p, "")
            return
        payload = wire.SttJob(p.id, model, cfg.deadline_ms, job.audio, job.language).to_payload()
        self.metrics.inc("hearth_helper_jobs_sent_total")
        self.metrics.inc("hearth_helper_job_bytes_total", len(payload))
        self.publish(wire.jobs_for(p.taker), payload, 1, False)

    def _choose(self, capacity: dict[str, int]) -> str:
        """Under the lock: the member with the fewest jobs out for its capacity; equals take turns."""
        out = Counter(p.taker for p in self._pending.values() if not p.fallback)
        members = sorted(capacity)
        self._turn = (self._turn + 1) % len(members)
        order = members[self._turn:] + members[:self._turn]
        return min(order, key=lambda m: out[m] / capacity[m])

    def forget(self, key: tuple[str, str]) -> None:
        with self._cond:
            for p in [p for p in self._pending.values() if p.job.key == key]:
                self._close(p)
        self.local.forget(key)

    # a helper's messages (network thread); `helper` is the login the broker saw
    def on_taken(self, helper: str, msg: wire.JobTaken) -> None:
        with self._cond:
            p = self._pending.get(msg.job)
            if p is not None and p.taker == helper:
                p.acked = True
                return
            why = self._why_not(helper, msg.job, p)
        self._ignored(helper, why)

    def on_result(self, helper: str, msg: wire.JobResult) -> None:
        with self._cond:
            p = self._pending.get(msg.job)
            refuse = p is None or p.taker != helper
            if refuse:
                why = self._why_not(helper, msg.job, p)
            else:
                p.acked = True
                if msg.ok:
                    self._close(p)
        if refuse:
            self._ignored(helper, why)
            return
        if not msg.ok:
            self.metrics.inc('hearth_helper_results_total{outcome="failed"}')
            self._to_box(p, "helper_failed")
            return
        rtt = (time.monotonic() - p.sent) * 1000
        self.roster.record(helper, msg.decode_ms, rtt)
        self.metrics.inc(f'hearth_helper_jobs_total{{helper="{helper}"}}')
        self.metrics.inc(f'hearth_helper_round_trip_seconds_total{{helper="{helper}"}}', rtt / 1000)
        self.metrics.observe_ms("hearth_helper_round_trip_seconds", rtt)
        p.job.done(p.job, msg.text, msg.decode_ms)

    def offered(self, helper: str) -> None:
        """A helper (re)announced itself: it is worth a try again."""
        self._resting.pop(helper, None)

    def bad_message(self, helper: str) -> None:
        """A payload on a helper topic that breaks the contract (garbage, another protocol)."""
        self._ignored(helper, "bad")

    # inside
    def _why_not(self, helper: str, job: str, p: Pending | None) -> str:
        """Under the lock: why an answer from `helper` for `job` is not believed."""
        taker = p.taker if p is not None else self._resolved.get(job)
        if taker is None:
            return "unknown"                    # a job the box never sent (or long forgotten)
        return "late" if taker == helper else "not_given"

    def _ignored(self, helper: str, why: str) -> None:
        self.metrics.inc(f'hearth_helper_results_ignored_total{{reason="{why}"}}')
        if why == "not_given":                  # answering another's job: named, flagged on the Overview
            self.metrics.inc(f'hearth_helper_not_given_total{{helper="{helper}"}}')
        if self.roster.is_helper(helper):
            self.roster.count(helper, {"late": "late", "not_given": "not_given"}.get(why, "ignored"))

    def _close(self, p: Pending) -> None:
        """Under the lock: the job is answered (or no longer wanted); later answers are ignored."""
        p.done = True
        self._pending.pop(p.id, None)
        self._resolved[p.id] = p.taker
        while len(self._resolved) > REMEMBER:
            self._resolved.popitem(last=False)

    def _to_box(self, p: Pending, why: str) -> None:
        """The box's own engine decodes the job; the first answer (its own or a helper's) wins."""
        with self._cond:
            if p.done:
                return
            if why:
                if p.fallback:
                    return
                p.fallback = why
        if why == "not_taken":
            # a helper gone without its last will (e.g. a clean disconnect that never said offline):
            # the next jobs do not wait for a taker that is not there
            self._resting[p.taker] = time.monotonic() + RESTING_S
        if why:
            self.metrics.inc(f'hearth_helper_fallbacks_total{{reason="{why}"}}')
            log.info("job %s (%s) falls back to the box's engine: %s", p.id, p.model, why)

        def answered(job: DecodeJob, text: str | None, ms: float) -> None:
            with self._cond:
                if p.done:
                    return
                self._close(p)
            self.metrics.inc('hearth_helper_jobs_total{helper="box"}')
            p.job.done(p.job, text, ms)

        self.local.submit(replace(p.job, done=answered), limit=False)

    def _watch(self) -> None:
        """Take back jobs nobody took in time, or whose taker did not answer in time."""
        while True:
            with self._cond:
                if self._stop:
                    return
                cfg = self.settings()
                now = time.monotonic()
                due, wake = [], now + 1.0
                for p in self._pending.values():
                    if p.taker == BOX or p.fallback:
                        continue
                    limit = p.sent + (cfg.deadline_ms if p.acked else cfg.take_ms) / 1000
                    if now >= limit:
                        due.append((p, "deadline" if p.acked else "not_taken"))
                    else:
                        wake = min(wake, limit)
                if not due:
                    self._cond.wait(max(0.005, wake - now))
            for p, why in due:
                self._to_box(p, why)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._timer.join(timeout=2)
