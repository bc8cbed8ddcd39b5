"""One spoken turn, streamed in real time to Hearth (MQTT, as a device) or to a Wyoming peer, with
the clock started at the end of speech.

A frame of FRAME_MS goes out when its recording would have ended (as from a microphone). The clock
starts when the frame holding the last speech sample has been handed to the client library, and
stops when the final transcript arrives. Modes, the same for both sides where both can do it:

  device   the device streams 0.5 s of room noise after the speech, then ends the session
           (`stt/end`, Wyoming `audio-stop`): what a satellite with its own silence timer does
  oracle   the last frame ends at the last speech sample, then the session ends at once: a device
           that knows exactly when speech ended; also push-to-talk (the button released as the
           person stops), since no trailing audio is sent
  vad      Hearth only: the device streams speech and then room noise until Hearth ends the
           session itself (`endpoint: vad`); nothing tells Hearth where speech ended

Text to speech: the clock runs from the request leaving to the first audio chunk arriving.
"""

from __future__ import annotations

import asyncio
import queue
import time
import uuid
from dataclasses import dataclass

from bench.clips import Clip
from mqtt import topics
from mqtt.messages import Error, SttEnd, SttFinal, SttStart

FRAME_MS = 30
FRAME = 32 * FRAME_MS                 # bytes of 16 kHz mono s16
DEVICE_TAIL = int(0.5 * 32000)        # the device's own silence timer: 0.5 s
MODES = ("device", "oracle", "vad")


@dataclass
class Turn:
    text: str
    latency_s: float          # end of speech -> final transcript
    decode_ms: float = 0.0    # Hearth's engine time for the final decode (0: the speculation covered it)
    processing_ms: float = 0.0  # Hearth's own count from the session's end to the final leaving
    partials: int = 0         # partial transcripts Hearth sent while the person spoke


def _audio(clip: Clip, mode: str) -> bytes:
    if mode == "device":
        return clip.pcm[:clip.speech_end + DEVICE_TAIL]
    if mode == "oracle":
        return clip.pcm[:clip.speech_end]
    return clip.pcm


def _frames(audio: bytes, speech_end: int):
    """(offset, frame, holds the last speech sample)."""
    for i in range(0, len(audio), FRAME):
        frame = audio[i:i + FRAME]
        yield i, frame, i < speech_end <= i + len(frame)


class BenchError(RuntimeError):
    pass


def _final(link, session: str, item, partials: list) -> SttFinal | None:
    if item.topic == topics.stt_partial(link.device):
        partials.append(item.at)
    elif item.topic == topics.error(link.device):
        err = Error.from_payload(item.payload)
        if err.ref in (None, session):
            raise BenchError(f"Hearth answered {err.code}: {err.message}")
    elif item.topic == topics.stt_final(link.device):
        final = SttFinal.from_payload(item.payload)
        if final.session == session:
            return final
    return None


def hearth(link, clip: Clip, mode: str, timeout: float = 30.0) -> Turn:
    """One turn through Hearth as a device (`appliance.commands.client.DeviceLink`)."""
    session = uuid.uuid4().hex[:12]
    link.publish(topics.stt_start(link.device), SttStart(
        session=session, rate=16000, width=2, channels=1,
        endpoint="vad" if mode == "vad" else "device").to_payload())
    audio_topic = topics.stt_audio(link.device, session)
    t0, spoke_until, final, partials = time.monotonic(), None, None, []
    for i, frame, last_speech in _frames(_audio(clip, mode), clip.speech_end):
        time.sleep(max(0.0, t0 + (i + len(frame)) / 32000 - time.monotonic()))
        link.publish(audio_topic, frame, qos=0)
        if last_speech:
            spoke_until = time.monotonic()
        if mode == "vad":               # a device stops streaming once Hearth has ended the session
            while final is None:
                try:
                    item = link.inbox.get_nowait()
                except queue.Empty:
                    break
                final = _final(link, session, item, partials)
            if final is not None:
                break
    if mode != "vad":
        link.publish(topics.stt_end(link.device), SttEnd(session=session).to_payload())
    deadline = time.monotonic() + timeout
    while final is None:
        item = link.next(deadline)
        final = _final(link, session, item, partials)
    if spoke_until is None:     # Hearth ended the session in a pause, before the speech ended: negative
        spoke_until = t0 + clip.speech_end / 32000
    return Turn(final.text, item.at - spoke_until, final.decode_ms, final.processing_ms, len(partials))


async def _peer(port: int, clip: Clip, mode: str) -> Turn:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        t0, spoke_until = time.monotonic(), None
        for i, frame, last_speech in _frames(_audio(clip, mode), clip.speech_end):
            await asyncio.sleep(max(0.0, t0 + (i + len(frame)) / 32000 - time.monotonic()))
            await c.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=frame).event())
            if last_speech:
                spoke_until = time.monotonic()
        await c.write_event(AudioStop().event())
        while True:
            event = await c.read_event()
            if event is None:
                raise BenchError("wyoming-faster-whisper closed the connection")
            if Transcript.is_type(event.type):
                return Turn(Transcript.from_event(event).text, time.monotonic() - spoke_until)


def peer(port: int, clip: Clip, mode: str) -> Turn:
    """One turn through wyoming-faster-whisper (it has no endpointing of its own: device or oracle)."""
    if mode == "vad":
        raise ValueError("wyoming-faster-whisper does not end a session itself")
    return asyncio.run(_peer(port, clip, mode))


def hearth_say(link, text: str) -> float:
    """Seconds from `tts/say` to the first audio chunk on the device (never from the phrase cache)."""
    from appliance.commands import client as hclient
    spoken = hclient.say(link, text)
    if spoken.end.cached:
        raise BenchError(f"Hearth answered {text!r} from its phrase cache: the bench must ask new texts")
    return spoken.first_audio_s


async def _peer_say(port: int, text: str) -> float:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    async with AsyncTcpClient("127.0.0.1", port) as c:
        t0 = time.monotonic()
        await c.write_event(Synthesize(text=text).event())
        first = None
        while True:
            event = await c.read_event()
            if event is None:
                raise BenchError("wyoming-piper closed the connection")
            if AudioChunk.is_type(event.type) and first is None:
                first = time.monotonic() - t0
            elif AudioStop.is_type(event.type):
                return first


def peer_say(port: int, text: str) -> float:
    """Seconds from `synthesize` to the first audio chunk, reading the whole reply like a speaker would."""
    return asyncio.run(_peer_say(port, text))
