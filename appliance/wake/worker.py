"""The wake thread: every satellite stream's frames arrive in one queue; each pass takes one 80 ms
chunk from every stream that has one and runs the openWakeWord networks once for all of them.
Detections go to the arbiter; the winner's stream becomes an STT session (SessionManager), the
audio after the wake word included; when its transcript is out the stream listens again.

Only this thread touches the streams. The MQTT network thread stamps each frame's arrival and
enqueues; the session thread and the speaker report back through `session_event`.

When it falls behind (more speaking streams than the cores score in real time, or other work on
the machine), it degrades in this order, and says so (`hearth_wake_lag_seconds`, the Overview):
- the sessions come first: detection runs in slices of DETECT_BUDGET_S, and between them every
  frame of a stream whose session is open goes on to the session manager, stamped with the time it
  arrived (so the rate guard judges the wire, never this queue) and arbitration deadlines are kept;
- stale audio of streams with no speech (chunks the quiet gate would skip) is skipped at once;
- then new streams pay: they are refused with `busy`, and when the thread stays far behind the
  newest listening streams are ended with `busy`, never the oldest, the just woken or a session
  (appliance/wake/overload.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from appliance.audio.pcm import frame_to_engine
from appliance.state.config import Settings
from appliance.process.metrics import Metrics
from appliance.voice.outbound import Replies
from appliance.voice.sessions import SessionManager, WakeLead
from appliance.wake.arbitration import Arbiter, Claim, Decision
from appliance.wake.features import CHUNK_SAMPLES, LAG_SAMPLES, OwwFeatures, OwwModel
from appliance.wake.models import OWW, OWW_BASE_THRESHOLD, Catalog, MicroDetector, threshold
from appliance.wake.overload import PASS_S, Overload
from appliance.wake.review import Woken
from appliance.wake.stream import ARBITRATING, CATCH_UP_CHUNKS, LISTENING, SESSION, Stream
from mqtt import wake as w
from mqtt.messages import ProtocolError, SttStart

log = logging.getLogger(__name__)
QUIET_AFTER_S = 1.0          # no new detection on a stream right after its session or a stand-down
STT_PIECE = 32000            # audio handed to the session in pieces of 1 s
PRE_ROLL_SAMPLES = 3200      # the session starts 200 ms before the scored audio ends: a word's onset is kept
DETECT_BUDGET_S = 0.16       # detection works at most this long before the inbox (sessions) is served again
STALE_S = 0.24               # audio waiting longer than this is stale: skipped where it holds no speech


class WakeWorker:
    def __init__(self, settings: Settings, catalog: Catalog, sessions: SessionManager, replies: Replies,
                 metrics: Metrics, group_of: Callable[[str, w.WakeStart], str]):
        self.settings = settings
        self.catalog = catalog
        self.sessions = sessions
        self.replies = replies
        self.metrics = metrics
        self.group_of = group_of
        self.on_transcript: list[Callable[[str, str, str], None]] = []   # (device, session, text)
        self.woken = Woken()           # the sessions a wake word opened, with the audio before each (wake review)
        self._before: dict[str, bytes] = {}     # device -> the history before its last detection's lead
        self.features = OwwFeatures()
        self.oww_models: dict[str, OwwModel] = {}
        self.streams: dict[str, Stream] = {}          # device -> its stream (one microphone each)
        self.arbiter = Arbiter(settings.wake.arbitration_window_ms / 1000)
        self.inbox: queue.Queue = queue.Queue(maxsize=20000)
        self.busy_s = 0.0
        self.steps = 0                 # stream-chunks run through openWakeWord
        self.skipped = 0               # stream-chunks the quiet gate skipped
        self.stale_skipped = 0         # ... of which skipped as stale audio while behind
        self.overload = Overload(metrics)
        self._warned: set[tuple[str, str]] = set()
        if catalog.default.engine == OWW:
            self._model(catalog.default.name)           # load the default model at start-up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wake", daemon=True)
        self._thread.start()
        metrics.gauge("hearth_wake_streams", lambda: len(self.streams))
        metrics.gauge("hearth_wake_queue_depth", lambda: self.inbox.qsize())
        metrics.gauge("hearth_wake_busy_seconds", lambda: round(self.busy_s, 3))
        metrics.gauge("hearth_wake_inference_steps", lambda: self.steps)
        metrics.gauge("hearth_wake_skipped_steps", lambda: self.skipped)
        metrics.gauge("hearth_wake_backlog_chunks", self.backlog)
        metrics.gauge("hearth_wake_stale_skipped_steps", lambda: self.stale_skipped)

    # any thread: enqueue only
    def put(self, op: str, device: str, arg=None) -> bool:
        try:
            self.inbox.put_nowait((op, device, arg))
            return True
        except queue.Full:
            self.metrics.inc("hearth_wake_frames_dropped_total")
            return False

    def stop(self) -> None:
        self._stop.set()
        self.inbox.put(("stop", "", None))
        self._thread.join(timeout=5)

    # the wake thread
    def _run(self) -> None:
        last_sweep = next_pass = time.monotonic()
        while not self._stop.is_set():
            deadline = min(self.arbiter.next_deadline() or next_pass + 0.25, next_pass)
            wait = max(0.0, deadline - time.monotonic())
            try:
                items = [self.inbox.get(timeout=wait)]
            except queue.Empty:
                items = []
            while len(items) < 5000:
                try:
                    items.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            for op, device, arg in items:
                if op == "stop":
                    return
                self._handle(op, device, arg)
            if time.monotonic() >= next_pass:      # one pass per chunk time: every stream in one batch
                next_pass = time.monotonic() + PASS_S
                t0 = time.perf_counter()
                try:
                    if self._detect(t0 + DETECT_BUDGET_S):
                        next_pass = time.monotonic()     # behind: the inbox first, then on at once
                except Exception:
                    log.exception("wake word detection failed")
                self.busy_s += time.perf_counter() - t0
                self._measure_lag()
                self._shed()
            for decision in self.arbiter.due(time.monotonic()):
                self._guard(self._decide, decision)
            if time.monotonic() - last_sweep > 1.0:
                last_sweep = time.monotonic()
                self._sweep()

    def _handle(self, op: str, device: str, arg) -> None:
        match op:
            case "open": self._guard(self._open, device, arg)
            case "audio": self._guard(self._audio, device, *arg)      # (stream, payload, arrival time)
            case "close": self._guard(self._close, device, arg)
            case "session": self._guard(self._session_event, device, *arg)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except ProtocolError as exc:
            device = args[0] if args and isinstance(args[0], str) else ""
            self.metrics.error(time.time(), f"{device or 'wake'}: {exc.code}")
            if device:
                self.replies.error(device, exc)
        except Exception:
            log.exception("wake handling failed (%s)", fn.__name__)

    def _model(self, name: str) -> OwwModel:
        if name not in self.oww_models:
            ref = self.catalog.resolve(OWW, name)
            self.oww_models[name] = OwwModel(name, ref.path)
        return self.oww_models[name]

    def _open(self, device: str, msg: w.WakeStart) -> None:
        ref = self.catalog.resolve(msg.engine, msg.model, msg.stream)
        if device in self.streams:
            self._close(device, "")                     # a device restarting its stream
        if len(self.streams) >= self.settings.wake.max_streams:
            raise ProtocolError("too_many_streams", f"{len(self.streams)} streams are open; Hearth takes no more", msg.stream)
        if refused := self.overload.refuse_new(list(self.streams.values())):
            self.metrics.inc("hearth_wake_busy_total")
            self._warned.add((device, msg.stream))     # its frames are dropped quietly: busy was the one error
            raise ProtocolError("busy", refused, msg.stream)
        sensitivity = self.settings.wake.sensitivity if msg.sensitivity is None else msg.sensitivity
        if ref.engine == OWW:
            self._model(ref.name)
            s = Stream(device, msg, ref, threshold(sensitivity, OWW_BASE_THRESHOLD), self.group_of(device, msg))
        else:
            micro = MicroDetector(ref, sensitivity)
            s = Stream(device, msg, ref, micro.threshold, self.group_of(device, msg), micro=micro)
        self.streams[device] = s
        self._warned.discard(s.key)
        self.metrics.inc("hearth_wake_streams_total")
        self._feedback(s, "idle")

    def _audio(self, device: str, stream_id: str, payload: bytes, at: float) -> None:
        s = self.streams.get(device)
        if s is None or s.id != stream_id:
            if (device, stream_id) not in self._warned:
                self._warned.add((device, stream_id))
                raise ProtocolError("unknown_stream", f"audio for stream '{stream_id}', which is not open; send wake/start first", stream_id)
            return
        pcm = frame_to_engine(payload, s.start.audio_format, stream_id)
        if s.mode == SESSION:
            s.last_frame, s.arrived = time.monotonic(), at
            self.sessions.audio(device, s.session, pcm, at)
        else:
            if s.mode == ARBITRATING:
                s.capture.extend(pcm)               # kept for the session; still scored for the peak
            s.add(pcm, at)

    def _close(self, device: str, stream_id: str) -> None:
        s = self.streams.get(device)
        if s is None or (stream_id and s.id != stream_id):
            return
        del self.streams[device]
        self.arbiter.forget(device)
        if s.mode == SESSION and s.session:
            self.sessions.end(device, s.session)
        if s.micro:
            s.micro.close()

    def _sweep(self) -> None:
        limit = self.settings.limits.session_idle_timeout_s
        now = time.monotonic()
        for s in [s for s in self.streams.values() if now - s.last_frame > limit]:
            self._close(s.device, s.id)
            self.replies.error(s.device, ProtocolError("stream_timeout", f"no audio for {limit:g} s; stream ended", s.id))

    # detection: one pass = one chunk from every listening stream, batched
    def _detect(self, until: float) -> bool:
        """Passes until every stream has caught up (False), or until `until` (perf_counter) with
        audio still waiting (True: the inbox and the sessions are served, then detection goes on)."""
        self._skip_stale()
        while True:
            batch = [s for s in self.streams.values() if s.mode != SESSION and s.ready]
            if not batch:
                return False
            self._pass(batch)
            if time.perf_counter() >= until:
                return True

    def _skip_stale(self) -> None:
        """Stale audio of a listening stream that holds no speech (the quiet gate would skip it) goes
        straight to the history: no pass waits for it."""
        gate_db = self.settings.wake.gate_db
        stale = time.monotonic() - STALE_S
        for s in self.streams.values():
            if s.mode != LISTENING or s.micro is not None:
                continue
            while len(s.ready) > 1 and s.ready[0][1] < stale and s.quiet(s.ready[0][0], gate_db):
                chunk, _ = s.ready.popleft()
                s.gate(chunk, gate_db)              # the floor follows the room as in a pass
                s.history.append(chunk)
                s.oww = None                        # caught up from the history when it is loud again
                self.skipped += 1
                self.stale_skipped += 1

    def _pass(self, batch: list[Stream]) -> None:
        gate_db = self.settings.wake.gate_db
        chunks = {s.key: s.ready.popleft()[0] for s in batch}
        scored: list[tuple[Stream, float]] = []
        oww: list[Stream] = []
        for s in batch:
            chunk = chunks[s.key]
            if s.micro is not None:
                scored.append((s, s.micro.score(chunk)))
            elif s.gate(chunk, gate_db):
                oww.append(s)
            else:
                s.oww = None                            # quiet: skip; catch up from history when loud again
                self.skipped += 1
        self._catch_up([s for s in oww if s.oww is None])
        t0 = time.perf_counter()          # the cost of a stream's chunk, without the catch-up (a one-off)
        self.features.step([s.oww for s in oww], [chunks[s.key] for s in oww])
        self.steps += len(oww)
        by_model: dict[str, list[Stream]] = {}
        for s in oww:
            by_model.setdefault(s.model.name, []).append(s)
        for name, group in by_model.items():
            scored += zip(group, self._model(name).score([s.oww for s in group]).tolist())
        self.overload.cost(time.perf_counter() - t0, len(oww))
        now = time.monotonic()
        for s in batch:
            s.history.append(chunks[s.key])
        for s, score in scored:
            if s.mode == ARBITRATING:
                self.arbiter.raise_score(s.room, s.device, score)
            elif score >= s.threshold and now >= s.quiet_until:
                self._detected(s, score)

    def _catch_up(self, streams: list[Stream]) -> None:
        """Rebuild the state of streams whose gate just opened from their last chunks, batched."""
        if not streams:
            return
        for s in streams:
            s.oww = self.features.new_state()
        for r in range(CATCH_UP_CHUNKS):
            due = [s for s in streams if len(s.history) >= CATCH_UP_CHUNKS - r]
            if due:
                back = [CATCH_UP_CHUNKS - r for _ in due]
                self.features.step([s.oww for s in due], [s.history[-b] for s, b in zip(due, back)])

    def _detected(self, s: Stream, score: float) -> None:
        level = round(s.level(), 1)
        lead = s.tail(LAG_SAMPLES + PRE_ROLL_SAMPLES)
        s.detected_at = len(lead)              # where in the session's audio the wake word was scored
        heard = s.tail(CATCH_UP_CHUNKS * CHUNK_SAMPLES)
        self._before[s.device] = heard[:len(heard) - len(lead)]      # the wake word itself, for its review
        s.capture = bytearray(lead + b"".join(c for c, _ in s.ready) + bytes(s.pending))
        s.mode = ARBITRATING
        self.metrics.inc("hearth_wake_detections_total")
        self.replies.send(w.wake_detected(s.device), w.WakeDetected(
            stream=s.id, model=s.model.name, score=round(float(score), 4), level_dbfs=level, engine=s.model.engine))
        self._feedback(s, "wake")
        decision = self.arbiter.claim(s.room, Claim(s.device, s.id, float(score), level, time.monotonic()))
        if decision is not None:
            self._decide(decision)

    def _decide(self, d: Decision) -> None:
        winner = d.winner.device if d.winner else d.previous
        for claim in d.losers:
            s = self.streams.get(claim.device)
            if s is not None and s.id == claim.stream and s.mode == ARBITRATING:
                self._listen(s)
                self.metrics.inc("hearth_wake_stand_downs_total")
                self.replies.send(w.stand_down(s.device), w.WakeStandDown(stream=s.id, model=s.model.name, winner=winner))
                self._feedback(s, "idle")
        s = self.streams.get(d.winner.device) if d.winner else None
        if s is not None and s.id == d.winner.stream and s.mode == ARBITRATING:
            self._open_session(s)

    def _open_session(self, s: Stream) -> None:
        s.sessions += 1
        s.session = f"w{s.sessions}-{s.id}"[:64]
        start = SttStart(session=s.session, endpoint="vad", partials=False, language=s.start.language)
        audio = bytes(s.capture)
        # The capture came off the network by s.arrived, already metered there (the satellites
        # room's FloodGuard); the session's meter starts where a device sending in real time began
        # it, and each piece counts as arrived when its last sample did, never when this thread
        # got to it: audio that waited here is never held against the device.
        per_s = start.audio_format.bytes_per_second
        began = s.arrived - len(audio) / per_s
        self.sessions.start(s.device, start, wake=WakeLead(s.detected_at, self.settings.wake.command_wait_ms),
                            at=began)
        for i in range(0, len(audio), STT_PIECE):
            piece = audio[i:i + STT_PIECE]
            self.sessions.audio(s.device, s.session, piece, min(s.arrived, began + (i + len(piece)) / per_s))
        self.woken.add(s.device, s.session, self._before.pop(s.device, b""))
        s.capture = bytearray()
        s.ready.clear()
        s.pending.clear()
        s.mode = SESSION
        self._feedback(s, "listening")

    def _listen(self, s: Stream) -> None:
        """Back to listening for the wake word, with a fresh detector."""
        s.mode, s.session, s.capture = LISTENING, None, bytearray()
        s.history.clear()
        s.ready.clear()
        s.pending.clear()
        s.oww = None
        s.quiet_until = time.monotonic() + QUIET_AFTER_S
        if s.micro:
            s.micro.reset()

    # reports from the session thread: ("final" | "failed", session, text)
    def _session_event(self, device: str, event: str, session: str, text: str) -> None:
        s = self.streams.get(device)
        if s is None or s.session != session:
            return
        self._listen(s)
        if event == "failed":
            self._feedback(s, "error", session)
            return
        for hook in self.on_transcript:
            hook(device, session, text)

    def _feedback(self, s: Stream, state: str, session: str | None = None) -> None:
        self.replies.send(w.feedback(s.device), w.Feedback(state=state, stream=s.id, session=session or s.session))

    def backlog(self) -> int:
        """Whole chunks waiting in the most-behind stream (read from other threads: a snapshot)."""
        return max((len(s.ready) for s in list(self.streams.values())), default=0)

    # overload
    def _measure_lag(self) -> None:
        self.overload.measure(min((s.ready[0][1] for s in self.streams.values() if s.mode != SESSION and s.ready),
                                  default=time.monotonic()))

    def _shed(self) -> None:
        """Still far behind: the newest listening streams are ended with busy (appliance/wake/overload.py)."""
        new, why = self.overload.to_shed(list(self.streams.values()))
        if not new:
            return
        log.warning("%s", why)
        for s in new:
            self._close(s.device, s.id)
            self._warned.add(s.key)
            self.metrics.inc("hearth_wake_busy_total")
            self.replies.error(s.device, ProtocolError(
                "busy", f"the wake word thread is {self.overload.lag_s:.1f} s behind: this new stream is ended; "
                "start it again in a few seconds", s.id))
