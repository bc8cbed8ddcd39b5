"""The speaker: text in, PCM out sentence by sentence, for MQTT devices and every other edge.

`stream()` yields PCM chunks as Piper finishes each sentence (or from the phrase cache), so the
first audio leaves before the whole reply is synthesised. `say()` queues a device's request;
one worker thread publishes tts/start, the audio chunks and tts/end on that device's topics.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

from appliance.config import TtsSettings
from appliance.metrics import Metrics
from appliance.outbound import Replies
from appliance.storage import StorageError
from appliance.tts.cache import PhraseCache
from appliance.tts.voices import VoiceError, Voices
from mqtt import topics
from mqtt.messages import ProtocolError, TtsEnd, TtsSay, TtsStart

log = logging.getLogger(__name__)
MAX_CHUNK_BYTES = 32768      # one MQTT message of audio: ~0.75 s at 22 kHz


class Speaker:
    def __init__(self, settings: TtsSettings, voices: Voices, cache: PhraseCache, metrics: Metrics,
                 replies: Replies | None = None):
        self.settings = settings
        self.voices = voices
        self.cache = cache
        self.metrics = metrics
        self.replies = replies
        self._engine_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=256)
        self.observers: list = []        # fn(event, device, request) on the tts thread; event: start | end
        self._thread = threading.Thread(target=self._run, name="tts", daemon=True)
        self._thread.start()

    def check(self, text: str, voice: str | None, ref: str | None = None) -> str:
        """Validate a request; returns the voice name. Raises ProtocolError."""
        if not text.strip():
            raise ProtocolError("bad_text", "text is empty", ref)
        if len(text) > self.settings.max_text_chars:
            raise ProtocolError("too_large", f"text of {len(text)} characters is over the {self.settings.max_text_chars} limit", ref)
        try:
            return self.voices.info(voice).name
        except VoiceError as exc:
            raise ProtocolError("unknown_voice", str(exc), ref) from None

    def rate(self, voice: str | None) -> int:
        return self.voices.info(voice).rate

    def stream(self, text: str, voice: str | None = None) -> Iterator[bytes]:
        """PCM chunks (16-bit mono at the voice's rate), sentence by sentence, cached."""
        reply = self.reply(text, voice)
        yield from reply
        reply.remember()

    def reply(self, text: str, voice: str | None = None) -> "Reply":
        """An iterable reply; call remember() after the last chunk has gone out to cache it."""
        name = self.check(text, voice)
        cached = self.cache.get(name, text)
        if cached is not None:
            self.metrics.inc("hearth_tts_cache_hits_total")
        return Reply(self, name, text, cached)

    def _synthesize(self, name: str, text: str) -> Iterator[bytes]:
        sentences = iter(self.voices.get(name).synthesize(text))
        while True:
            with self._engine_lock:
                chunk = next(sentences, None)
            if chunk is None:
                return
            pcm = chunk.audio_int16_bytes
            for i in range(0, len(pcm), MAX_CHUNK_BYTES):
                yield pcm[i:i + MAX_CHUNK_BYTES]

    # MQTT devices
    def say(self, device: str, msg: TtsSay) -> None:
        """Called on the network thread: validate and enqueue."""
        self.check(msg.text, msg.voice, msg.request)
        try:
            self._queue.put_nowait((device, msg, time.monotonic()))
        except queue.Full:
            raise ProtocolError("busy", "too many replies are waiting; try again shortly", msg.request) from None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            device, msg, t0 = item
            try:
                self._notify("start", device, msg.request)
                self._speak(device, msg, t0)
            except ProtocolError as exc:
                self.replies.error(device, exc)
            except StorageError as exc:       # the reply went out; only the phrase cache could not keep it
                log.warning("phrase not cached for %s: %s", device, exc)
                self.replies.error(device, ProtocolError(exc.code, f"reply spoken but not cached: {exc}", msg.request))
            except Exception as exc:
                log.exception("tts failed for %s", device)
                self.replies.error(device, ProtocolError("tts_failed", f"synthesis failed: {exc}", msg.request))
            finally:
                self._notify("end", device, msg.request)

    def _notify(self, event: str, device: str, request: str) -> None:
        for observer in self.observers:
            try:
                observer(event, device, request)
            except Exception:
                log.exception("speaker observer failed")

    def _speak(self, device: str, msg: TtsSay, t0: float) -> None:
        info = self.voices.info(msg.voice)
        self.replies.send(topics.tts_start(device), TtsStart(request=msg.request, rate=info.rate, voice=info.name))
        reply = self.reply(msg.text, info.name)
        chunks = total = 0
        for pcm in reply:
            if chunks == 0:
                self.metrics.observe_ms("hearth_tts_first_audio_seconds", (time.monotonic() - t0) * 1000)
            self.replies.audio(topics.tts_audio(device, msg.request), pcm)
            chunks += 1
            total += len(pcm)
        ms = (time.monotonic() - t0) * 1000
        self.metrics.observe_ms("hearth_tts_seconds", ms)
        self.metrics.inc("hearth_tts_replies_total")
        self.replies.send(topics.tts_end(device), TtsEnd(
            request=msg.request, chunks=chunks, audio_s=round(total / 2 / info.rate, 3), processing_ms=round(ms, 1),
            cached=reply.cached is not None))
        reply.remember()              # after the reply has gone out: the cache write is off the hot path

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


class Reply:
    """One reply's chunks: from the cache, or synthesised as they are asked for (and kept for the cache)."""

    def __init__(self, speaker: Speaker, voice: str, text: str, cached: list[bytes] | None):
        self.speaker, self.voice, self.text, self.cached = speaker, voice, text, cached
        self._produced: list[bytes] = []
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        if self.cached is not None:
            yield from self.cached
            return
        for pcm in self.speaker._synthesize(self.voice, self.text):
            self._produced.append(pcm)
            yield pcm
        self._complete = True

    def remember(self) -> None:
        if self.cached is None and self._complete:
            self.speaker.cache.put(self.voice, self.text, self._produced)
