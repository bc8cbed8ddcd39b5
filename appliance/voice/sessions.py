"""STT sessions: audio in, endpointing, speculative decodes, partial and final transcripts out.

All session state lives on one thread (the "audio" thread): the MQTT network thread only puts
decoded, validated messages in its inbox, and the decode worker puts its results there too.
The inbox keeps one lane per client, served in turn, and audio faster than `limits.audio_rate`
times real time is refused where it enters, so a flooding client delays only itself
(appliance/voice/shares.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from appliance.audio import turn
from appliance.audio.endpoint import Endpointer
from appliance.audio.pcm import ENGINE_BYTES_PER_S, frame_to_engine
from appliance.state.config import Settings
from appliance.process.metrics import Metrics
from appliance.voice.outbound import Replies
from appliance.voice.shares import DROP, PASS, AudioGuard, FairInbox
from appliance.stt.decoder import FINAL, PARTIAL, SPECULATIVE, DecodeJob, Decoder, QueueFull
from mqtt import topics
from mqtt.messages import ProtocolError, SttFinal, SttPartial, SttStart

log = logging.getLogger(__name__)
INBOX_PER_CLIENT = 2000          # messages one client may have waiting for the audio thread


@dataclass(frozen=True)
class WakeLead:
    """A session opened by a wake word: its audio starts with the wake word's tail, which ends
    around byte `detected_at`; the command may start up to `command_wait_ms` later."""

    detected_at: int
    command_wait_ms: int

    def endpointer_args(self) -> dict:
        return {"wake_end": self.detected_at, "no_speech_ms": self.command_wait_ms}


@dataclass
class SttSession:
    device: str
    start: SttStart
    endpointer: Endpointer
    client: str = ""                     # whose share (appliance/voice/shares.py): the device, a Wyoming address, ...
    stream: object | None = None
    audio: bytearray = field(default_factory=bytearray)
    opened: float = field(default_factory=time.monotonic)
    last_frame: float = field(default_factory=time.monotonic)
    state: str = "open"                  # open | finalizing | done
    end_reason: str = ""
    ended_at: float = 0.0
    best: tuple[int, str] | None = None  # (bytes covered, text) of the newest finished decode
    inflight: set = field(default_factory=set)
    partial_at: int = 0                  # audio length at the last partial request
    fed: int = 0                         # streaming engines: bytes handed to the recognizer
    last_partial: str = ""
    final_submitted: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.start.session)

    @property
    def need(self) -> int:
        """Bytes a decode must cover to count as final: all speech the VAD heard, else all audio."""
        # (a device-ended session's endpointer keeps listening after a pause, so this covers speech after it too)
        if self.endpointer.heard_speech:
            return min(len(self.audio), self.endpointer.last_speech_end)
        return len(self.audio)


class SessionManager:
    def __init__(self, settings: Settings, decoder: Decoder, replies: Replies, metrics: Metrics):
        self.settings = settings
        self.decoder = decoder
        self.replies = replies
        self.metrics = metrics
        self.sessions: dict[tuple[str, str], SttSession] = {}
        self._warned: set[tuple[str, str]] = set()
        # other edges (Hermes, Wyoming) register a sink for their device ids ("hermes:<site>", ...):
        # its partial(SttPartial), final(SttFinal) and error(ProtocolError) replace the MQTT topics
        self.sinks: dict[str, object] = {}
        self.inbox = FairInbox(INBOX_PER_CLIENT)
        lim = settings.limits
        self.guard = AudioGuard(lim.audio_rate, lim.audio_burst_s, lim.audio_cooldown_s)
        # fn(device, session, text, audio, engine) after each final transcript (e.g. the privacy store),
        # run by `defer` (the service's chores thread) so a slow store never holds up the audio thread
        self.on_final: list = []
        self.defer = lambda fn: fn()
        self._stop = threading.Event()
        # fn(event, device, session, text) on the audio thread; event: thinking | final | failed
        self.observers: list = []
        self._thread = threading.Thread(target=self._run, name="audio", daemon=True)
        self._thread.start()
        metrics.gauge("hearth_stt_sessions_open", lambda: len(self.sessions))
        metrics.gauge("hearth_stt_queue_depth", lambda: self.decoder.depth)

    # called on the network thread (or another edge's thread): meter, enqueue, nothing more
    def start(self, device: str, msg: SttStart, client: str | None = None, wake: "WakeLead | None" = None,
              at: float | None = None) -> None:
        """`client`: whose share the session uses (default: the device itself); `wake`: the session
        begins with a wake word's tail (see WakeLead); `at`: when its first audio arrived from the
        network (monotonic), where that was before now (AudioGuard.allow)."""
        client = client or device
        if self.guard.cooling(client):
            # refused here, at once: a Wyoming peer stops being read before it sends more
            self._error(device, self._too_fast_error(msg.session, cooling=True))
            self._put(client, ("refused", device, msg.session))
            return
        key = (device, msg.session)
        opened = self.guard.open(key, client, msg.audio_format.bytes_per_second, at)
        if not self.inbox.put(client, ("start", device, (msg, wake))) and opened:
            self.guard.close(key)              # that client's lane is full: the start is lost with its metering
            self.metrics.inc("hearth_stt_frames_dropped_total")

    def audio(self, device: str, session: str, payload: bytes, at: float | None = None) -> None:
        """`at`: when the frame arrived from the network, if it waited in a queue of Hearth's since."""
        key = (device, session)
        # an oversized frame is refused as too_large on the audio thread, not metered
        verdict = self.guard.allow(key, len(payload), at) if len(payload) <= self.settings.limits.max_frame_bytes else PASS
        if verdict == DROP:
            self.metrics.inc("hearth_stt_frames_dropped_total")
            return
        client = self.guard.client(key) or device
        if verdict == PASS:
            self._put(client, ("audio", device, (session, payload)))
        else:                               # told at once; the audio thread then ends the session
            self._error(device, self._too_fast_error(session))
            self._put(client, ("too_fast", device, session))

    def end(self, device: str, session: str) -> None:
        self._put(self.guard.client((device, session)) or device, ("end", device, session))

    def _put(self, client: str, item: tuple) -> None:
        if not self.inbox.put(client, item):
            self.metrics.inc("hearth_stt_frames_dropped_total")

    def stop(self) -> None:
        self._stop.set()
        self.inbox.put_urgent(("stop", "", None))
        self._thread.join(timeout=5)

    # the audio thread
    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.inbox.get(timeout=0.25)
            if item is None:
                self._tick()
                continue
            op, device, arg = item
            try:
                match op:
                    case "start": self._start(device, *arg)
                    case "audio": self._audio(device, *arg)
                    case "too_fast": self._too_fast(device, arg)
                    case "refused": self._refuse((device, arg))
                    case "end": self._end(device, arg)
                    case "decoded": self._decoded(*arg)
                    case "stop": return
            except ProtocolError as exc:
                self.metrics.error(time.time(), f"{device}: {exc.code}")
                self._error(device, exc)
            except Exception:
                log.exception("session handling failed (%s from %s)", op, device)
            self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        lim = self.settings.limits
        for s in list(self.sessions.values()):
            if s.state == "open" and now - s.last_frame > lim.session_idle_timeout_s:
                self._drop(s)
                self._error(s.device, ProtocolError(
                    "session_timeout", f"no audio for {lim.session_idle_timeout_s:g} s; session ended", s.start.session))
            elif s.state == "finalizing" and now - s.ended_at > 120:
                self._drop(s)
                self._error(s.device, ProtocolError("stt_failed", "no transcript within 120 s", s.start.session))

    def _start(self, device: str, msg: SttStart, wake: "WakeLead | None" = None) -> None:
        key = (device, msg.session)
        if key in self.sessions:
            raise ProtocolError("session_exists", f"session '{msg.session}' is already open", msg.session)
        client = self.guard.client(key) or device
        lim = self.settings.limits
        open_here = sum(1 for s in self.sessions.values() if s.client == client)
        if open_here >= lim.max_sessions_per_device:
            self._refuse(key)
            raise ProtocolError("too_many_sessions",
                                f"{open_here} sessions already open for this client; end one first", msg.session)
        if self.guard.cooling(client):
            self._refuse(key)
            raise self._too_fast_error(msg.session, cooling=True)
        if len(self.sessions) >= lim.max_sessions:
            self._refuse(key)
            raise ProtocolError("busy", f"{len(self.sessions)} sessions are open; try again shortly", msg.session)
        engine = self.decoder.engine
        endpointer = Endpointer(self.settings.endpoint, stop_at_endpoint=msg.endpoint == "vad",
                                await_words=self._judges_words, hint=msg.turn,
                                **(wake.endpointer_args() if wake else {}))
        session = SttSession(device, msg, endpointer, client=client,
                             stream=engine.open_stream() if engine.streaming else None)
        self._warned.discard(key)
        self.sessions[key] = session
        self.metrics.inc("hearth_stt_sessions_total")

    def _refuse(self, key: tuple[str, str]) -> None:
        """A start refused: its frames are dropped quietly (the refusal was the one error)."""
        self.guard.close(key)
        if len(self._warned) > 10000:
            self._warned.clear()
        self._warned.add(key)

    def _audio(self, device: str, session_id: str, payload: bytes) -> None:
        s = self.sessions.get((device, session_id))
        if s is not None and s.state != "open":
            return                      # frames after the endpoint: the utterance is already complete
        if s is None:
            # frames that trail a finished session are dropped quietly; others get one error per session
            if (device, session_id) not in self._warned:
                self._warned.add((device, session_id))
                raise ProtocolError("unknown_session", f"audio for session '{session_id}', which is not open", session_id)
            return
        lim = self.settings.limits
        if len(payload) > lim.max_frame_bytes:
            raise ProtocolError("too_large", f"audio frame of {len(payload)} bytes is over the {lim.max_frame_bytes}-byte limit", session_id)
        pcm = frame_to_engine(payload, s.start.audio_format, session_id)
        s.last_frame = time.monotonic()
        s.audio.extend(pcm)
        events = s.endpointer.feed(pcm)
        if len(s.audio) >= lim.max_session_s * ENGINE_BYTES_PER_S:
            self._finalize(s, "limit")
            return
        speculative = self.settings.endpoint.speculative and not self.decoder.engine.streaming
        for event in events:
            # (a partial of this session may be running apart: appliance/stt/decoder.py)
            if (event == "doubt" and speculative and not self.decoder.busy
                    and all(n == s.partial_at for n in s.inflight)):
                self._submit(s, SPECULATIVE)       # the speech may be ending: one chunk ahead of the pause
            elif event == "pause" and speculative:
                self._speculate(s)
                if s.state != "open":
                    return
            elif s.start.endpoint == "vad" and event in ("endpoint", "no-speech"):
                self._finalize(s, "vad" if event == "endpoint" else "no-speech")
                return
        self._maybe_partial(s)

    @property
    def _judges_words(self) -> bool:
        """End of turn from the speculative transcript's words (appliance/audio/turn.py)?"""
        ep = self.settings.endpoint
        return ep.turn_detection and ep.speculative and not self.decoder.engine.streaming

    def _speculate(self, s: SttSession) -> None:
        """A pause began: a decode of all the speech so far, unless one is done or under way."""
        if s.best and s.best[0] >= s.need:
            self._judge(s, s.best[1])
        elif not any(n >= s.need for n in s.inflight):
            self._submit(s, SPECULATIVE)
            if not any(n >= s.need for n in s.inflight) and self._judges_words:
                self._judge(s, None)              # refused (queue full): no words to wait for

    def _judge(self, s: SttSession, text: str | None) -> None:
        """The words of the speech before this pause are known: how long the pause must last."""
        language = s.start.language or self.settings.stt.language or "en"
        english = language.split("-")[0].lower() == "en"       # the rule's word lists are English
        wait = turn.wait_ms(self.settings.endpoint, text if self._judges_words and english else None, s.start.turn)
        s.endpointer.hold(wait)
        log.debug("end of turn %s: %r -> wait %d ms (silent for %d ms)", s.start.session, text, wait,
                  s.endpointer.silence_ms)
        if s.start.endpoint == "vad" and s.endpointer.ending():
            self._finalize(s, "vad")

    def _too_fast_error(self, session_id: str, cooling: bool = False) -> ProtocolError:
        lim = self.settings.limits
        if cooling:
            return ProtocolError("too_fast", f"audio came faster than {lim.audio_rate:g}x real time a moment ago; "
                                 f"no new session for {lim.audio_cooldown_s:g} s from then", session_id)
        return ProtocolError("too_fast", f"audio arrives faster than {lim.audio_rate:g}x real time (after a "
                             f"{lim.audio_burst_s:g} s burst); the session is ended: send audio as it is recorded",
                             session_id)

    def _too_fast(self, device: str, session_id: str) -> None:
        """The guard refused a session's audio (the device was told then): end the session quietly."""
        s = self.sessions.get((device, session_id))
        if s is None or s.state != "open":
            return
        self.metrics.inc("hearth_stt_too_fast_total")
        self._drop(s)

    def _maybe_partial(self, s: SttSession) -> None:
        if self.decoder.engine.streaming:
            # streaming engines see every chunk: feed in batches of ~100 ms
            if len(s.audio) - s.fed >= ENGINE_BYTES_PER_S // 10:
                self._submit(s, PARTIAL)
            return
        interval = self.settings.stt.partial_interval_ms
        if (not s.start.partials or interval <= 0 or not s.endpointer.in_speech or s.endpointer.paused
                or s.endpointer.doubted):     # the speech may be ending: keep the engine for the final
            return
        if len(s.audio) - s.partial_at >= interval * ENGINE_BYTES_PER_S // 1000 and not self.decoder.partial_busy:
            s.partial_at = len(s.audio)
            self._submit(s, PARTIAL)

    def _end(self, device: str, session_id: str) -> None:
        s = self.sessions.get((device, session_id))
        if s is None:
            raise ProtocolError("unknown_session", f"end for session '{session_id}', which is not open", session_id)
        if s.state == "open":
            self._finalize(s, "device")

    def _finalize(self, s: SttSession, reason: str) -> None:
        s.state, s.end_reason, s.ended_at = "finalizing", reason, time.monotonic()
        self._notify("thinking", s)
        if reason == "no-speech" or not s.audio:
            self._publish_final(s, "", 0.0)
            return
        if self.decoder.engine.streaming:
            self._submit(s, FINAL)
            return
        if s.best and s.best[0] >= s.need:
            self._publish_final(s, s.best[1], 0.0)
        elif not any(n >= s.need for n in s.inflight):
            self._submit(s, FINAL)
        # else: a decode covering all the speech is running; _decoded publishes it

    def _submit(self, s: SttSession, kind: str) -> None:
        streaming = self.decoder.engine.streaming
        if streaming:
            audio = bytes(s.audio[s.fed:])
            s.fed = len(s.audio)
        else:
            audio = bytes(s.audio[s.endpointer.command_start:])     # a wake word's tail is not the command
        job = DecodeJob(s.key, kind, audio, len(s.audio), s.start.language, self._on_decoded, stream=s.stream,
                        client=s.client)
        try:
            self.decoder.submit(job)
        except QueueFull as exc:
            if kind == FINAL:
                self._drop(s)
                raise ProtocolError("busy", str(exc), s.start.session) from None
            return
        s.inflight.add(len(s.audio))
        if kind == FINAL:
            s.final_submitted = True

    def _on_decoded(self, job: DecodeJob, text: str | None, ms: float) -> None:   # worker thread
        self.inbox.put_urgent(("decoded", job.key[0], (job, text, ms)))

    def _decoded(self, job: DecodeJob, text: str | None, ms: float) -> None:
        s = self.sessions.get(job.key)
        if s is None:
            return
        s.inflight.discard(job.length)
        self.metrics.observe_ms(f"hearth_stt_decode_{job.kind}_seconds", ms)
        if text is None:
            if s.state == "finalizing" and (job.kind == FINAL or not s.inflight):
                self._drop(s)
                self._error(s.device, ProtocolError("stt_failed", "the speech engine failed on this audio", s.start.session))
            elif s.state == "open" and s.endpointer.paused and job.length >= s.need:
                self._judge(s, None)              # no words to judge: the fixed rule
            return
        streaming = self.decoder.engine.streaming
        if not streaming and (s.best is None or job.length >= s.best[0]):
            s.best = (job.length, text)
        if s.state == "finalizing":
            if streaming:
                if job.kind == FINAL:
                    self._publish_final(s, text, ms)
            elif job.length >= s.need:
                self._publish_final(s, text, ms if job.kind == FINAL else 0.0)
            elif not s.inflight and not s.final_submitted:
                self._submit(s, FINAL)
            return
        if s.endpointer.paused and job.length >= s.need:
            # the words before this pause (a partial that ran until the speech stopped counts too)
            self._judge(s, text)
            if s.state != "open":
                return
        if job.kind == PARTIAL and s.start.partials and text and text != s.last_partial:
            s.last_partial = text
            partial = SttPartial(session=s.start.session, text=text)
            if sink := self.sinks.get(s.device):
                sink.partial(partial)
            else:
                self.replies.send(topics.stt_partial(s.device), partial, qos=0)

    def _publish_final(self, s: SttSession, text: str, decode_ms: float) -> None:
        processing_ms = (time.monotonic() - s.ended_at) * 1000
        final = SttFinal(
            session=s.start.session, text=text, audio_s=round(len(s.audio) / ENGINE_BYTES_PER_S, 3),
            processing_ms=round(processing_ms, 1), decode_ms=round(decode_ms, 1),
            endpoint=s.end_reason, engine=self.decoder.engine.name)
        if sink := self.sinks.get(s.device):
            sink.final(final)
        else:
            self.replies.send(topics.stt_final(s.device), final)
        self.metrics.observe_ms("hearth_stt_final_seconds", processing_ms)
        self.metrics.inc("hearth_stt_transcripts_total")
        s.state = "done"
        self._notify("final", s, text)
        self._drop(s)
        for hook in self.on_final:
            # the session is closed, so its buffer no longer changes: no copy on every final
            self.defer(lambda hook=hook: self._run_hook(hook, s, text))

    def _run_hook(self, hook, s: SttSession, text: str) -> None:
        try:
            hook(s.device, s.start.session, text, s.audio, self.decoder.engine.name)
        except Exception:
            log.exception("final-transcript hook %s failed", hook)

    def _error(self, device: str, exc: ProtocolError) -> None:
        if sink := self.sinks.get(device):
            sink.error(exc)
        else:
            self.replies.error(device, exc)

    def _notify(self, event: str, s: SttSession, text: str = "") -> None:
        for observer in self.observers:
            observer(event, s.device, s.start.session, text)

    def _drop(self, s: SttSession) -> None:
        if s.state != "done":
            s.state = "done"
            self._notify("failed", s)
        self.sessions.pop(s.key, None)
        self.guard.close(s.key)
        if len(self._warned) > 10000:
            self._warned.clear()
        self._warned.add(s.key)
        self.decoder.forget(s.key)
