"""`hearth helper run`: take speech jobs from the box's broker until stopped.

The helper loads its engine once (the same `[stt]` keys and `stt.device = auto` rule as the
box; a model directory on its own disk, nothing downloaded), checks the box's jobs protocol on
`hearth/jobs/v1/info`, announces its offer (retained, with an `online: false` last will) and reads
the jobs the box sends it, on its own job topic. Each job is acknowledged with `helper/taken` as it arrives and
answered with `helper/result`; a job whose deadline passed before an engine was free is dropped
(the box has taken it back by then).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass

from appliance.state.config import Settings
from appliance.stt.engines import SttEngine, load_engine
from mqtt import jobs as wire
from mqtt.client import Connection, Credentials
from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
LOGIN_REFUSED = ("Not authorized", "Bad user name or password")     # the box no longer knows this login


@dataclass
class Counts:
    taken: int = 0
    answered: int = 0
    dropped: int = 0           # past their deadline before an engine was free
    refused: int = 0           # broken or foreign jobs


class Helper:
    def __init__(self, settings: Settings, creds: Credentials, engines: list[SttEngine], say=print):
        self.settings = settings
        self.creds = creds
        self.engines = engines
        self.say = say
        cfg = settings.helper
        self.model = wire.check_model(cfg.model_name or str(engines[0].model))
        self.languages = [x.strip() for x in (cfg.languages or settings.stt.language).split(",") if x.strip()]
        self.counts = Counts()
        self.jobs: "queue.Queue[tuple[wire.SttJob, float] | None]" = queue.Queue()
        self.reading = False           # subscribed to its own job topic
        self.stopped = threading.Event()
        self.removed = ""          # why the box no longer takes this helper (its login refused)
        self.conn = Connection(creds, self._message, [wire.info()], client_id=creds.username,
                               will=(wire.offer(creds.username), self._offer(False), 1, True),
                               on_connected=self._announce, on_refused=self._refused)

    def _offer(self, online: bool) -> bytes:
        from appliance.version import VERSION
        e = self.engines[0]
        return wire.HelperOffer(online=online, engine=e.name, models=[self.model], languages=self.languages,
                                device=getattr(e, "device", "cpu"), capacity=len(self.engines),
                                version=VERSION).to_payload()

    def _refused(self, reason: str) -> None:      # network thread
        """The box refused this helper's login: it was revoked there (or the box lost it). Say so
        once and stop, instead of knocking every few seconds forever."""
        if reason not in LOGIN_REFUSED or self.stopped.is_set():
            return
        self.removed = (f"this helper ({self.creds.username}) was removed from the box: its login is refused "
                        f"({reason}). It stops taking jobs; to lend again, join again: hearth helper join URL")
        log.error("%s", self.removed)
        self.stopped.set()

    def _announce(self) -> None:        # network thread, on every (re)connect
        self.conn.publish(wire.offer(self.creds.username), self._offer(True), 1, True)

    def _message(self, topic: str, payload: bytes) -> None:   # network thread
        if topic == wire.info():
            self._on_info(payload)
        elif topic == wire.jobs_for(self.creds.username):
            self._on_job(payload)

    def _on_info(self, payload: bytes) -> None:
        try:
            info = wire.JobsInfo.from_payload(payload, 4096)
        except ProtocolError as exc:
            log.error("the box's jobs info is unusable (%s): %s; update Hearth here or on the box", exc.code, exc)
            return
        if info.jobs_version != wire.JOBS_VERSION:
            log.error("the box speaks jobs protocol %s, this helper %s: update Hearth on the older one; "
                      "no jobs are taken meanwhile", info.jobs_version, wire.JOBS_VERSION)
            return
        if self.reading:
            return
        self.reading = True
        self.conn.subscribe(wire.jobs_for(self.creds.username), qos=1)
        self.say(f"helper ready: {self.creds.username} offers {self.model} "
                 f"({self.engines[0].name}, {getattr(self.engines[0], 'device', 'cpu')}, capacity {len(self.engines)})")

    def _on_job(self, payload: bytes) -> None:
        try:
            job = wire.SttJob.from_payload(payload, self.settings.helper.max_job_bytes)
        except ProtocolError as exc:
            self.counts.refused += 1
            log.warning("refused a job: %s: %s", exc.code, exc)
            return
        self.counts.taken += 1
        self.conn.publish(wire.taken(self.creds.username), wire.JobTaken(job=job.job).to_payload(), 1)
        self.jobs.put((job, time.monotonic()))

    def _work(self, engine: SttEngine) -> None:
        while (item := self.jobs.get()) is not None:
            job, arrived = item
            if time.monotonic() > arrived + job.deadline_ms / 1000:
                self.counts.dropped += 1
                log.info("dropped job %s: its deadline passed before an engine was free", job.job)
                continue
            t0 = time.perf_counter()
            try:
                if engine.streaming:
                    stream = engine.open_stream()
                    stream.accept(job.pcm)
                    text, ok = stream.finish(), True
                else:
                    text, ok = engine.transcribe(job.pcm, job.language), True
            except Exception:
                log.exception("decode failed for job %s", job.job)
                text, ok = "", False
            ms = (time.perf_counter() - t0) * 1000
            result = wire.JobResult(job=job.job, text=text[:wire.MAX_TEXT], ok=ok, decode_ms=round(ms, 1))
            self.conn.publish(wire.result(self.creds.username), result.to_payload(), 1)
            self.counts.answered += 1
            log.info("job %s: %.0f ms, %d bytes of audio", job.job, ms, len(job.pcm))

    def run(self) -> None:
        workers = [threading.Thread(target=self._work, args=(e,), name=f"helper-decode-{i}", daemon=True)
                   for i, e in enumerate(self.engines)]
        for w in workers:
            w.start()
        self.conn.start()
        try:
            self.stopped.wait()
        finally:
            # stop lending: the offer says offline at once (the last will covers a crash)
            if not self.removed:
                self.conn.publish(wire.offer(self.creds.username), self._offer(False), 1, True)
                time.sleep(0.2)
            self.conn.stop()
            for _ in workers:
                self.jobs.put(None)


def run(settings: Settings, creds: Credentials, say=print) -> Helper:
    t0 = time.perf_counter()
    engines = [load_engine(settings.stt) for _ in range(max(1, settings.helper.capacity))]
    log.info("engines loaded in %.1f s", time.perf_counter() - t0)
    helper = Helper(settings, creds, engines, say)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: helper.stopped.set())
    helper.run()
    return helper
