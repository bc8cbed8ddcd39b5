"""Wyoming text to speech: text in, `audio-start`, `audio-chunk`s and `audio-stop` out.

The audio comes from the one speaker (service.speaker.stream: same voices, phrase cache and
turns at the engine as MQTT devices, one client per peer address), produced on a worker thread and written as it arrives.
"""

from __future__ import annotations

import asyncio
import re

from wyoming.audio import AudioChunk, AudioStart, AudioStop

SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
SAMPLES_PER_CHUNK = 1024


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences of streamed text, and the unfinished rest."""
    parts = SENTENCE_END.split(text)
    done = [p.strip() for p in parts[:-1] if p.strip()]
    return done, parts[-1]


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
