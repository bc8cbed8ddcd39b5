"""Wyoming text to speech: text in, `audio-start`, `audio-chunk`s and `audio-stop` out.

The audio comes from the one speaker (service.speaker.stream: same voices, phrase cache and
turns at the engine as MQTT devices, one client per peer address), produced on a worker thread and
written as it arrives. Streamed text (`synthesize-start/chunk/stop`) goes through a SentenceStream:
each chunk costs time in its own length, never the stream's, and the stream's total is capped.
"""

from __future__ import annotations

import asyncio
import re

from wyoming.audio import AudioChunk, AudioStart, AudioStop

from mqtt.messages import ProtocolError

SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
SAMPLES_PER_CHUNK = 1024


def split_long(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at the last space or newline that fits."""
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind(" ", 0, limit + 1), text.rfind("\n", 0, limit + 1))
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces + [text]


class SentenceStream:
    """Streamed text in, complete sentences out (each at most `max_sentence` characters).

    The unfinished sentence is kept as a list of pieces and only the new chunk is searched for a
    sentence end (with the one character before it, for the look-behind), so a chunk costs time
    in its own length. A sentence that runs past `max_sentence` is spoken up to its last space.
    More than `max_chars` in one stream raises ProtocolError `too_large` and refuses the rest."""

    def __init__(self, voice: str | None, max_chars: int, max_sentence: int):
        self.voice = voice
        self.max_chars, self.max_sentence = max_chars, max_sentence
        self.total = 0
        self.refused = False
        self._pieces: list[str] = []
        self._pending = 0
        self._last = ""

    def feed(self, text: str) -> list[str]:
        if self.refused:
            return []
        self.total += len(text)
        if self.total > self.max_chars:
            self.refused = True
            self._pieces, self._pending = [], 0
            raise ProtocolError("too_large", f"streamed text is over the {self.max_chars}-character limit "
                                "([wyoming] max_stream_chars): the rest of this stream is not spoken; "
                                "send synthesize-stop and start a new stream")
        done, start, offset = [], 0, len(self._last)
        for match in SENTENCE_END.finditer(self._last + text):
            done += self._take(text[start:match.start() - offset])
            start = match.end() - offset
        if text[start:]:
            self._pieces.append(text[start:])
            self._pending += len(text) - start
        if self._pending > self.max_sentence:          # a run-on sentence: speak what fits, keep the tail
            *spoken, tail = split_long("".join(self._pieces), self.max_sentence)
            done += [s.strip() for s in spoken if s.strip()]
            self._pieces, self._pending = [tail], len(tail)
        self._last = text[-1:] or self._last
        return done

    def _take(self, head: str) -> list[str]:
        sentence = ("".join(self._pieces) + head).strip()
        self._pieces, self._pending = [], 0
        return [s.strip() for s in split_long(sentence, self.max_sentence) if s.strip()]

    def rest(self) -> list[str]:
        """What is left at synthesize-stop (nothing after a refusal)."""
        return self._take("")


async def synthesize(handler, text: str, voice: str | None) -> None:
    """Speak `text` on one connection; ProtocolError (empty text, unknown voice) goes back as an error event."""
    speaker = handler.service.speaker
    name = speaker.check(" ".join(text.split()), voice)
    rate = speaker.rate(name)
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()

    def produce() -> None:
        try:
            for pcm in speaker.stream(" ".join(text.split()), name, client=handler.client):
                loop.call_soon_threadsafe(pieces.put_nowait, pcm)
        except Exception as exc:             # reported to this client; the speaker keeps serving others
            loop.call_soon_threadsafe(pieces.put_nowait, exc)
        loop.call_soon_threadsafe(pieces.put_nowait, None)

    worker = loop.run_in_executor(None, produce)
    await handler.write_event(AudioStart(rate=rate, width=2, channels=1).event())
    step = SAMPLES_PER_CHUNK * 2
    while (pcm := await pieces.get()) is not None:
        if isinstance(pcm, Exception):
            await worker
            raise ValueError(f"synthesis failed: {pcm}")
        for i in range(0, len(pcm), step):
            await handler.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + step]).event())
    await worker
    await handler.write_event(AudioStop().event())
