"""The speaker: text in, PCM out sentence by sentence, for MQTT devices and every other edge.

`stream()` yields PCM chunks as Piper finishes each sentence (or from the phrase cache), so the
first audio leaves before the whole reply is synthesised. `say()` queues a device's request;
one worker thread publishes tts/start, the audio chunks and tts/end on that device's topics.
Fair shares (appliance/voice/shares.py): the queue keeps one lane per device, served in turn, and Piper
itself is taken one sentence at a time by clients in turn (MQTT devices, Wyoming addresses,
Hermes sites), so one client asking for a lot of speech delays only its own replies.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Iterator

from appliance.state.config import TtsSettings
from appliance.process.metrics import Metrics
from appliance.voice.outbound import Replies
from appliance.state.storage import StorageError
from appliance.voice.shares import Lanes, Turns
from appliance.tts.cache import PhraseCache
from appliance.tts.voices import VoiceError, Voices
from mqtt import topics
from mqtt.messages import ProtocolError, TtsEnd, TtsSay, TtsStart

log = logging.getLogger(__name__)
MAX_CHUNK_BYTES = 32768      # one MQTT message of audio: ~0.75 s at 22 kHz
MAX_WAITING = 256            # replies waiting across all devices
CLAUSE_REST_WORDS = 3        # the first sentence is split at its first clause only if this many words follow

_CLAUSE = re.compile(r"[,;:](?=\s)")
_SENTENCE_END = re.compile(r"[.?!](?=\s|$)")


def first_clause(text: str) -> tuple[str, str]:
    """The reply split where a person hears the first pause: after the first sentence's first
    clause ("Anna," + "the kitchen lights are on now. ..."), so Piper synthesises that much before
    anything is sent, not the whole sentence. ("", text): no clause to split off (no comma, semicolon
    or colon before the first full stop, or fewer than CLAUSE_REST_WORDS words after it in that sentence)."""
    clause = _CLAUSE.search(text)
    if clause is None:
        return "", text
    end = _SENTENCE_END.search(text)
    if end is not None and end.start() < clause.start():
        return "", text
    rest = text[clause.end():].lstrip()
    rest_end = _SENTENCE_END.search(rest)
    sentence_rest = rest[:rest_end.start()] if rest_end else rest
    if len(sentence_rest.split()) < CLAUSE_REST_WORDS or not text[:clause.start()].strip():
        return "", text
    return text[:clause.end()], rest


class Speaker:
    def __init__(self, settings: TtsSettings, voices: Voices, cache: PhraseCache, metrics: Metrics,
                 replies: Replies | None = None, per_client: int = 4):
        self.settings = settings
        self.voices = voices
        self.cache = cache
        self.metrics = metrics
        self.replies = replies
        self.per_client = per_client
        self._turns = Turns()                    # Piper, one sentence at a time, clients in turn
        self._cond = threading.Condition()
        self._waiting: Lanes[tuple] = Lanes()    # device -> (device, msg, queued at)
        self._stopping = False
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

    def stream(self, text: str, voice: str | None = None, client: str = "") -> Iterator[bytes]:
        """PCM chunks (16-bit mono at the voice's rate), sentence by sentence, cached.
        `client`: whose turn at the engine this is (a Wyoming address, a Hermes site)."""
        reply = self.reply(text, voice, client)
        yield from reply
        reply.remember()

    def reply(self, text: str, voice: str | None = None, client: str = "") -> "Reply":
        """An iterable reply; call remember() after the last chunk has gone out to cache it."""
        name = self.check(text, voice)
        cached = self.cache.get(name, text)
        if cached is not None:
            self.metrics.inc("hearth_tts_cache_hits_total")
        return Reply(self, name, text, cached, client)

    def _synthesize(self, name: str, text: str, client: str) -> Iterator[bytes]:
        """Piper's sentences, the first one clause first (first_clause): a person hears the reply
        start after its first clause is synthesised, and each later piece is ready long before the
        one before it has been played (Piper runs at about 0.07x real time here)."""
        voice = self.voices.get(name)
        head, rest = first_clause(text)
        sentences = itertools.chain(voice.synthesize(head) if head else (), voice.synthesize(rest))
        while True:
            with self._turns.turn(client):
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
        with self._cond:
            if self._waiting.count(device) >= self.per_client:
                raise ProtocolError("busy", f"{self.per_client} of your replies are waiting; wait for them first",
                                    msg.request)
            if len(self._waiting) >= MAX_WAITING:
                raise ProtocolError("busy", "too many replies are waiting; try again shortly", msg.request)
            self._waiting.push(device, (device, msg, time.monotonic()))
            self._cond.notify()

    def _next(self) -> tuple | None:
        with self._cond:
            while not len(self._waiting) and not self._stopping:
                self._cond.wait()
            return self._waiting.pop() if len(self._waiting) and not self._stopping else None

    def _run(self) -> None:
        while (item := self._next()) is not None:
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
        reply = self.reply(msg.text, info.name, client=device)
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
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


class Reply:
    """One reply's chunks: from the cache, or synthesised as they are asked for (and kept for the cache)."""

    def __init__(self, speaker: Speaker, voice: str, text: str, cached: list[bytes] | None, client: str = ""):
        self.speaker, self.voice, self.text, self.cached, self.client = speaker, voice, text, cached, client
        self._produced: list[bytes] = []
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        if self.cached is not None:
            yield from self.cached
            return
        for pcm in self.speaker._synthesize(self.voice, self.text, self.client):
            self._produced.append(pcm)
            yield pcm
        self._complete = True

    def remember(self) -> None:
        if self.cached is None and self._complete:
            self.speaker.cache.put(self.voice, self.text, self._produced)
