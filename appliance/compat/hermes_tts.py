"""Hermes text to speech: `hermes/tts/say` -> one WAV on `hermes/audioServer/<siteId>/playBytes/<id>`,
then `hermes/tts/sayFinished` once the satellite reports `playFinished` (or its audio had time to play).

Synthesis goes through the one speaker (service.speaker.stream: same Piper voices, same phrase
cache, same engine lock). One worker thread synthesises in order; the network thread only
validates and enqueues.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid

from appliance.audio.pcm import wav_bytes
from mqtt import hermes as h
from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
PLAY_GRACE_S = 5.0           # sayFinished goes out this long after the audio's length if no playFinished came


class HermesSpeaker:
    def __init__(self, service, publish, report):
        self.speaker = service.speaker
        self.voices = service.voices
        self.metrics = service.metrics
        # a playBytes message must fit in one MQTT packet (Mosquitto's max_packet_size)
        from appliance.process.broker import broker_config
        self.max_wav_bytes = broker_config(service.settings).max_packet_bytes - 1024
        self.publish = publish
        self.report = report
        self.pending: dict[tuple[str, str], tuple[float, h.TtsSay]] = {}   # (site, request id) -> (deadline, say)
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="hermes-tts", daemon=True)
        self._thread.start()

    def voice_for(self, lang: str | None) -> str | None:
        """A voice that speaks `lang` (e.g. "en" or "en-US"), else the default voice."""
        if lang:
            want = lang.replace("-", "_").lower()
            for name, info in sorted(self.voices.available.items()):
                if info.language.lower().startswith(want) or want.startswith(info.language.lower()[:2]):
                    return name
        return None

    # network thread
    def say(self, msg: h.TtsSay) -> None:
        request = msg.id or uuid.uuid4().hex
        try:
            self.speaker.check(msg.text, self.voice_for(msg.lang), request)
            self._queue.put_nowait((request, msg))
        except ProtocolError as exc:
            raise h.HermesError("tts", exc.message, msg.site_id, msg.session_id) from None
        except queue.Full:
            raise h.HermesError("tts", "too many replies are waiting; try again shortly", msg.site_id, msg.session_id) from None

    def finished(self, site: str, msg: h.AudioPlayFinished) -> None:
        with self._lock:
            entry = self.pending.pop((site, msg.id or ""), None)
        if entry is not None:
            self._say_finished(entry[1], msg.id)

    # worker thread
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                self._expire()
                continue
            if item is None:
                return
            request, msg = item
            try:
                self._speak(request, msg)
            except h.HermesError as exc:
                self.report(exc)
            except Exception as exc:
                log.exception("hermes tts failed for %s", msg.site_id)
                self.report(h.HermesError("tts", f"synthesis failed: {exc}", msg.site_id, msg.session_id))
            self._expire()

    def _speak(self, request: str, msg: h.TtsSay) -> None:
        t0 = time.monotonic()
        voice = self.voice_for(msg.lang)
        rate = self.speaker.rate(voice)
        pcm = b"".join(self.speaker.stream(msg.text, voice, client=f"hermes:{msg.site_id}"))
        wav = wav_bytes(pcm, rate)
        if len(wav) > self.max_wav_bytes:
            raise h.HermesError("tts", f"the reply is {len(pcm) / 2 / rate:.0f} s of audio, too long for one playBytes "
                                       f"message ({len(wav)} > {self.max_wav_bytes} bytes); split the text",
                                msg.site_id, msg.session_id)
        seconds = len(pcm) / 2 / rate
        with self._lock:
            self.pending[(msg.site_id, request)] = (time.monotonic() + seconds + PLAY_GRACE_S, msg)
        self.publish(h.play_bytes(msg.site_id, request), wav)
        self.metrics.observe_ms("hearth_hermes_tts_seconds", (time.monotonic() - t0) * 1000)

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [(key, entry) for key, entry in self.pending.items() if entry[0] < now]
            for key, _ in late:
                del self.pending[key]
        for (site, request), (_, msg) in late:
            log.info("no playFinished from %s for %s; sending sayFinished anyway", site, request)
            self._say_finished(msg, request)

    def _say_finished(self, msg: h.TtsSay, request: str | None) -> None:
        self.publish(h.SAY_FINISHED, h.TtsSayFinished(site_id=msg.site_id, id=msg.id or request,
                                                      session_id=msg.session_id).to_payload())

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
