"""The decode queue: one worker thread per engine, one decode at a time, fair between clients.

Finals (and speculative finals) go first: one lane per client (appliance/voice/shares.py), oldest first
within a lane, the lanes in turn, so a client with many utterances waiting delays only itself.
Partials only run when no final waits, at most one per session, taking sessions in turn, so a
chatty device cannot starve the others and many streaming satellites cannot delay the one device
that finished speaking. A client may have `max_per_client` finals waiting, all together `max_queue`.

A Whisper decode cannot be interrupted, and each one costs a whole encoder window (30 s; 10 s for a
command since `stt.window_s`, appliance/stt/whisper.py), so a partial that starts shortly before
the person stops would hold the engine while their final waits (measured with the 30 s window:
0.7 s instead of 0.5 s after the end of speech at load 2, issue 13). With a partial
engine (`stt.partial_threads` > 0, faster-whisper on a CPU) partials run on a second copy of the
model in their own thread, at a lower CPU priority (nice +10, inherited by the engine's own threads,
which are made as it loads): a final never waits for a partial, and while both run the final gets
most of the cores. Streaming engines keep one worker: a stream's chunks must stay in order.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.voice.shares import Lanes
from appliance.stt.engines import SttEngine

log = logging.getLogger(__name__)

FINAL, SPECULATIVE, PARTIAL = "final", "speculative", "partial"


class QueueFull(RuntimeError):
    """Too many decodes are waiting; the device is told to try again."""


@dataclass
class DecodeJob:
    key: tuple[str, str]                 # (device, session)
    kind: str
    audio: bytes                         # engine-format PCM: the whole utterance so far, or new audio for a stream
    length: int                          # bytes of the session's audio this job covers
    language: str | None
    done: Callable[["DecodeJob", str, float], None]   # (job, text, decode_ms), called on the worker thread
    stream: object | None = None         # streaming engines: the session's recognizer
    client: str = ""                     # whose lane (appliance/voice/shares.py); empty: the device
    submitted: float = field(default_factory=time.monotonic)

    @property
    def lane(self) -> str:
        return self.client or self.key[0]


EMPTY_MIN_BYTES = 16000              # half a second of 16 kHz s16 audio: shorter may well be nothing
PARTIAL_NICE = 10                    # partials yield the cores to finals (CFS weight 110 against 1024)


class Decoder:
    def __init__(self, engine: SttEngine, max_queue: int = 64, max_per_client: int = 4,
                 partial_engine: Callable[[], SttEngine] | None = None,
                 fallback: Callable[[], SttEngine] | None = None):
        self.engine = engine
        # a final the engine heard as nothing is decoded again by the other model (loaded on first need)
        self._load_fallback = fallback
        self.fallback_engine: SttEngine | None = None
        self.empty_fallbacks = 0
        self.max_queue = max_queue
        self.max_per_client = max_per_client
        self._finals: Lanes[DecodeJob] = Lanes()
        self._partials: "OrderedDict[tuple[str, str], DecodeJob]" = OrderedDict()
        self._cond = threading.Condition()
        self._stop = False
        self.busy = False
        self.decodes = 0
        # partials apart: loaded on their own thread (at its lower priority); until then none run
        self._apart = partial_engine is not None and not engine.streaming
        self._partial_busy = self._apart
        self.partial_engine: SttEngine | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode-{engine.name}", daemon=True)
        self._thread.start()
        if self._apart:
            self._partial_thread = threading.Thread(target=self._run_partials, args=(partial_engine,),
                                                    name=f"partials-{engine.name}", daemon=True)
            self._partial_thread.start()

    @property
    def partial_busy(self) -> bool:
        """Whether a partial now would wait (sessions only ask for one when it would not)."""
        return self._partial_busy if self._apart else self.busy

    @property
    def depth(self) -> int:
        return len(self._finals) + len(self._partials)

    def finals_waiting(self, lane: str | None = None) -> int:
        """Finals waiting, all of them or one client's (the helpers' dispatcher counts against the same limits)."""
        return len(self._finals) if lane is None else self._finals.count(lane)

    def submit(self, job: DecodeJob, limit: bool = True) -> None:
        """Queue a decode. `limit=False`: a job already admitted elsewhere (a helper's job the box
        takes back) is not refused by the queue limits."""
        with self._cond:
            if job.kind == PARTIAL:
                # a newer partial replaces the waiting one of the same session; streams must keep every chunk
                if job.stream is not None and job.key in self._partials:
                    old = self._partials.pop(job.key)
                    job.audio = old.audio + job.audio
                else:
                    self._partials.pop(job.key, None)
                self._partials[job.key] = job
            else:
                if limit and len(self._finals) >= self.max_queue:
                    raise QueueFull(f"{len(self._finals)} decodes are waiting; try again shortly")
                if limit and self._finals.count(job.lane) >= self.max_per_client:
                    raise QueueFull(f"{self.max_per_client} of your decodes are already waiting; "
                                    "wait for their transcripts")
                if job.stream is not None and job.key in self._partials:
                    # a stream's pending audio must be fed before its final
                    old = self._partials.pop(job.key)
                    job.audio = old.audio + job.audio
                self._finals.push(job.lane, job)
            self._cond.notify_all()      # two workers may wait: finals and partials

    def forget(self, key: tuple[str, str]) -> None:
        with self._cond:
            self._partials.pop(key, None)
            self._finals.remove(lambda j: j.key == key)

    def _next(self) -> DecodeJob | None:
        with self._cond:
            while not self._stop and not self._finals and (self._apart or not self._partials):
                self._cond.wait()
            if self._stop:
                return None
            self.busy = True
            if self._finals:
                return self._finals.pop()
            _key, job = self._partials.popitem(last=False)   # devices in turn
            return job

    def _next_partial(self) -> DecodeJob | None:
        with self._cond:
            while not self._stop and not self._partials:
                self._cond.wait()
            if self._stop:
                return None
            self._partial_busy = True
            _key, job = self._partials.popitem(last=False)   # devices in turn
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            text, ms = self._decode(self.engine, job)
            if text == "" and job.kind != PARTIAL and job.stream is None and len(job.audio) >= EMPTY_MIN_BYTES:
                text, ms = self._heard_nothing(job, ms)
            with self._cond:
                self.busy = False
                self.decodes += 1
            self._done(job, text, ms)

    def _heard_nothing(self, job: DecodeJob, ms: float) -> tuple[str, float]:
        """The engine returned no words for half a second or more of audio: the other model tries
        (tiny.en heard nothing in espeak-ng's quiet "Pause." in fan noise where base heard it)."""
        if self._load_fallback is None:
            return "", ms
        if self.fallback_engine is None:
            try:
                self.fallback_engine = self._load_fallback()
            except Exception:
                log.exception("the fallback engine could not be loaded; empty finals stay empty")
                self._load_fallback = None
                return "", ms
        text, more = self._decode(self.fallback_engine, job)
        self.empty_fallbacks += 1
        log.info("%s heard nothing in %.1f s of audio; %s heard %r", self.engine.model, len(job.audio) / 32000,
                 self.fallback_engine.model, text)
        return text or "", ms + more

    def _run_partials(self, load: Callable[[], SttEngine]) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PARTIAL_NICE)
        except OSError as exc:          # a container that forbids it: partials still run apart
            log.warning("partials run at normal priority: %s", exc)
        try:
            engine = load()             # the engine's threads are made now, at this thread's priority
        except Exception:
            log.exception("the partial engine could not be loaded; partials share the final decoder")
            with self._cond:
                self._apart = False
                self._cond.notify_all()
            return
        if hasattr(engine, "set_vocabulary"):
            engine.vocabulary = getattr(self.engine, "vocabulary", "")   # the household's words, as the final's
        self.partial_engine = engine
        with self._cond:
            self._partial_busy = False
        while (job := self._next_partial()) is not None:
            text, ms = self._decode(engine, job)
            with self._cond:
                self._partial_busy = False
                self.decodes += 1
            self._done(job, text, ms)

    @staticmethod
    def _decode(engine: SttEngine, job: DecodeJob) -> tuple[str | None, float]:
        t0 = time.perf_counter()
        try:
            if job.stream is not None:
                text = job.stream.accept(job.audio) if job.audio else ""
                if job.kind != PARTIAL:
                    text = job.stream.finish()
            else:
                text = engine.transcribe(job.audio, job.language)
        except Exception:
            log.exception("decode failed for %s", job.key)
            text = None
        return text, (time.perf_counter() - t0) * 1000

    @staticmethod
    def _done(job: DecodeJob, text: str | None, ms: float) -> None:
        try:
            job.done(job, text, ms)
        except Exception:
            log.exception("decode callback failed for %s", job.key)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if self._apart:
            self._partial_thread.join(timeout=5)
