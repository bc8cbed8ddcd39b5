"""Hermes (Rhasspy 2.5) compatibility: Hermes messages in, the same internal requests out.

`hermes/asr/startListening` opens a session in the one SessionManager (device id
`hermes:<siteId>`), audio frames of that site feed it, and its final transcript leaves as
`hermes/asr/textCaptured`; `hermes/tts/say` goes to the one speaker (appliance/compat/hermes_tts.py);
streamed audio also feeds the wake-word path (appliance/compat/hermes_wake.py) when it is available.
Off by default ([hermes] enabled, or `hearth hermes enable`).

Runs on paho's network thread: it parses, validates and hands over; the session manager's audio
thread and the TTS worker do the work. Bad input goes out on `hermes/error/<service>`.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
import wave
from dataclasses import dataclass

from appliance.audio.pcm import ENGINE_FORMAT, frame_to_engine
from appliance.compat import hermes_account
from appliance.voice.sessions import WakeLead
from mqtt import hermes as h
from mqtt.messages import AudioFormat, ProtocolError, SttFinal, SttPartial, SttStart

log = logging.getLogger(__name__)


@dataclass
class Listening:
    """One open `startListening` on a site."""
    site_id: str
    hermes_session: str | None
    hearth_session: str
    wakeword_id: str | None
    lang: str | None
    warned: bool = False


def read_wav_chunk(payload: bytes, site: str, session: str | None) -> tuple[bytes, AudioFormat]:
    """One Hermes audio frame (a small WAV file) -> its PCM and format, or HermesError."""
    try:
        with wave.open(io.BytesIO(payload), "rb") as w:
            fmt = AudioFormat(w.getframerate(), w.getsampwidth(), w.getnchannels())
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError, ValueError) as exc:
        raise h.HermesError("asr", f"audio frame is not a PCM WAV chunk ({exc})", site, session) from None
    try:
        fmt.check("audioFrame", session)
    except ProtocolError as exc:
        raise h.HermesError("asr", exc.message, site, session) from None
    return pcm, fmt

HOTWORD_LEAD_S = 5.0          # a startListening this soon after Hearth heard the site's wake word follows it


class HermesEdge:
    def __init__(self, service):
        self.service = service
        self.sessions = service.sessions
        self.max_json = service.settings.limits.max_json_bytes
        self.max_frame = service.settings.limits.max_frame_bytes * 2
        self.listening: dict[str, Listening] = {}       # siteId -> its open listen
        self.by_session: dict[str, Listening] = {}      # hearth session -> listen, until its transcript is out
        self._lock = threading.Lock()
        from appliance.compat.hermes_tts import HermesSpeaker
        self.speaker = HermesSpeaker(service, self.publish, self.report)
        self.wake = None                                  # set by hermes_wake.install when a detector exists
        self.hotword_at: dict[str, float] = {}            # site -> when Hearth last heard its wake word

    # outbound
    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.service._publish(topic, payload, qos, False)

    def report(self, exc: h.HermesError) -> None:
        log.info("hermes error (%s) for %s: %s", exc.service, exc.site_id, exc.message)
        self.service.metrics.error(time.time(), f"hermes:{exc.site_id}: {exc.service}")
        self.publish(h.error(exc.service), h.HermesErrorMessage.of(exc).to_payload())

    # inbound (network thread)
    def __call__(self, topic: str, payload: bytes) -> None:
        self.service.metrics.inc("hearth_hermes_messages_total")
        try:
            self._dispatch(topic, payload)
        except h.HermesError as exc:
            self.report(exc)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        match topic:
            case "hermes/asr/startListening":
                self.start_listening(h.AsrStartListening.from_payload(payload, self.max_json))
            case "hermes/asr/stopListening":
                self.stop_listening(h.AsrStopListening.from_payload(payload, self.max_json))
            case "hermes/tts/say":
                self.speaker.say(h.TtsSay.from_payload(payload, self.max_json))
            case "hermes/hotword/toggleOn" | "hermes/hotword/toggleOff":
                msg = h.HotwordToggle.from_payload(payload, self.max_json)
                if self.wake is not None:
                    self.wake.toggle(msg.site_id, topic.endswith("toggleOn"))
            case _:
                audio = h.parse_audio_server(topic)
                if audio is None:
                    return
                if audio.kind == "playFinished":
                    self.speaker.finished(audio.site_id, h.AudioPlayFinished.from_payload(payload, self.max_json))
                else:
                    self.audio(audio.site_id, payload)

    def start_listening(self, msg: h.AsrStartListening) -> None:
        device = f"hermes:{msg.site_id}"
        listen = Listening(msg.site_id, msg.session_id, uuid.uuid4().hex[:16], msg.wakeword_id, msg.lang)
        cap = self.service.settings.hermes.max_sites
        with self._lock:
            # every site comes over the one Hermes login: its sites together are one login's share
            if msg.site_id not in self.listening and len(self.listening) >= cap:
                self.service.metrics.inc("hearth_hermes_sites_refused_total")
                raise h.HermesError("asr", f"{cap} Hermes sites are listening already ([hermes] max_sites); "
                                    "stop one first", msg.site_id, msg.session_id)
            old = self.listening.pop(msg.site_id, None)
            self.listening[msg.site_id] = listen
            self.by_session[listen.hearth_session] = listen
        if old is not None:
            self.sessions.end(device, old.hearth_session)   # its transcript still goes out
        self.sessions.sinks[device] = AsrSink(self, msg.site_id)
        # the dialogue manager answers Hearth's own hotword detection: the stream may still hold the wake
        # word's tail, and the person may pause before the command, as with Hearth's own satellites
        heard = self.hotword_at.get(msg.site_id, -1e9)
        wake = WakeLead(0, self.service.settings.wake.command_wait_ms) if time.monotonic() - heard < HOTWORD_LEAD_S else None
        self.sessions.start(device, SttStart(
            session=listen.hearth_session, rate=ENGINE_FORMAT.rate, endpoint="vad" if msg.stop_on_silence else "device",
            partials=False, language=msg.lang), wake=wake)

    def stop_listening(self, msg: h.AsrStopListening) -> None:
        with self._lock:
            listen = self.listening.get(msg.site_id)
        if listen is None or (msg.session_id and listen.hermes_session and msg.session_id != listen.hermes_session):
            return          # Rhasspy's dialogue manager sends stopListening freely; nothing open is fine
        self.sessions.end(f"hermes:{msg.site_id}", listen.hearth_session)

    def audio(self, site: str, payload: bytes) -> None:
        with self._lock:
            listen = self.listening.get(site)
        wake = self.wake
        if listen is None and (wake is None or not wake.wants(site)):
            return          # satellites stream all the time; frames nobody listens to are dropped
        session = listen.hermes_session if listen else None
        try:
            if len(payload) > self.max_frame:
                raise h.HermesError("asr", f"audio frame of {len(payload)} bytes is over the {self.max_frame}-byte limit",
                                    site, session)
            pcm, fmt = read_wav_chunk(payload, site, session)
            pcm = frame_to_engine(pcm, fmt, session)
        except (h.HermesError, ProtocolError) as exc:
            if listen is not None and not listen.warned:      # one error per listen, not one per frame
                listen.warned = True
                raise exc if isinstance(exc, h.HermesError) else h.HermesError("asr", exc.message, site, session)
            return
        if listen is not None:
            self.sessions.audio(f"hermes:{site}", listen.hearth_session, pcm)
        if wake is not None:
            wake.feed(site, pcm)

    # results (the session manager's audio thread)
    def finished(self, site: str, session: str, final: SttFinal | None, error: ProtocolError | None = None) -> None:
        with self._lock:
            listen = self.by_session.pop(session, None)
            if listen is not None and self.listening.get(site) is listen:
                del self.listening[site]
        hermes_session = listen.hermes_session if listen else None
        if error is not None:
            self.report(h.HermesError("asr", error.message, site, hermes_session))
            return
        self.publish(h.TEXT_CAPTURED, h.AsrTextCaptured(
            text=final.text, likelihood=1.0 if final.text else 0.0, seconds=round(final.processing_ms / 1000, 3),
            site_id=site, session_id=hermes_session, wakeword_id=listen.wakeword_id if listen else None,
            lang=listen.lang if listen else None).to_payload())

    def stop(self) -> None:
        self.speaker.stop()
        if self.wake is not None:
            self.wake.stop()


class AsrSink:
    """Where the session manager delivers a Hermes site's results."""

    def __init__(self, edge: HermesEdge, site: str):
        self.edge = edge
        self.site = site

    def partial(self, msg: SttPartial) -> None:
        """Hermes has no partial transcripts (sessions start with partials off)."""

    def final(self, msg: SttFinal) -> None:
        self.edge.finished(self.site, msg.session, msg)

    def error(self, exc: ProtocolError) -> None:
        self.edge.finished(self.site, exc.ref or "", None, exc)


def install(service) -> None:
    service.account_providers.append(lambda: hermes_account.broker_accounts(service.settings))
    if not service.settings.hermes.enabled:
        return
    edge = HermesEdge(service)
    service.hermes = edge
    service.subscriptions.extend(h.SUBSCRIPTIONS)
    service.inbound.foreign["hermes/"] = edge
    service._stoppers.append(edge.stop)
    service.after_start.append(service.sync_broker)      # the broker learns the Hermes login
    from appliance.compat import hermes_wake
    hermes_wake.install(service, edge)
