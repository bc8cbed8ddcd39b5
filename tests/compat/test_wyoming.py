"""The Wyoming server driven by the `wyoming` library's own TCP client, with the real engines.

Wyoming has no login: a person allows the client's address first (here 127.0.0.1, as the
Devices page or `hearth devices wyoming allow` would). What an unapproved client gets is in
tests/abuse/test_abuse_wyoming.py."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from compat_kit import events_until, send_audio
from conftest import word_error_rate

COMMAND = "Turn on the kitchen lights and set a timer for ten minutes."


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


@pytest.fixture(scope="module")
def port(compat_hearth):
    compat_hearth.service.wyoming_access.allow("127.0.0.1")
    return compat_hearth.service.wyoming.port


def test_describe_lists_engines_models_and_voices(port, compat_hearth):
    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event((await events_until(client, "info"))[-1])
    info = run(go())
    assert info.asr[0].models[0].name == str(compat_hearth.service.engine.model)
    assert info.asr[0].models[0].languages == ["en"]
    assert info.asr[0].supports_transcript_streaming
    assert "en_US-joe-medium" in [v.name for v in info.tts[0].voices]
    assert info.tts[0].supports_synthesize_streaming


def test_transcribe_a_spoken_command(port, speech):
    wav = speech(COMMAND)

    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe(language="en").event())
            await send_audio(client, wav.pcm, wav.format.rate)
            return await events_until(client, "transcript")
    got = run(go())
    text = Transcript.from_event(got[-1]).text
    assert word_error_rate(COMMAND, text) <= 0.25, text


def test_transcript_streams_while_speaking(port, speech):
    text = "Please add milk, eggs, bread, butter and two kinds of cheese to the shopping list for Saturday."
    wav = speech(text)

    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            step = 16000 * 2 // 10                   # 100 ms of audio at the speed of speech
            for i in range(0, len(wav.pcm), step):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=wav.pcm[i:i + step]).event())
                await asyncio.sleep(0.1)
            await client.write_event(AudioStop().event())
            got = await events_until(client, "transcript")
            got += await events_until(client, "transcript-stop")
            return got
    got = run(go())
    types = [e.type for e in got]
    assert types[0] == "transcript-start" and "transcript-chunk" in types, types
    assert types[-2:] == ["transcript", "transcript-stop"]
    streamed = "".join(TranscriptChunk.from_event(e).text for e in got if e.type == "transcript-chunk")
    final = Transcript.from_event(got[-2]).text
    assert final.startswith(streamed.strip()[:10])
    assert word_error_rate(text, final) <= 0.3, final


def test_synthesize_returns_audio(port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Hello from Hearth over Wyoming.",
                                                voice=SynthesizeVoice(name="en_US-joe-medium")).event())
            return await events_until(client, "audio-stop")
    got = run(go())
    start = AudioStart.from_event(got[0])
    assert start.rate == 22050 and start.width == 2 and start.channels == 1
    pcm = b"".join(AudioChunk.from_event(e).audio for e in got if e.type == "audio-chunk")
    assert 1.0 < len(pcm) / 2 / start.rate < 6.0


def test_streaming_synthesis_speaks_each_sentence(port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart().event())
            for piece in ("The first sen", "tence is here. And the ", "second one follows", "."):
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(Synthesize(text="The first sentence is here. And the second one follows.").event())
            await client.write_event(SynthesizeStop().event())
            return await events_until(client, SynthesizeStopped().event().type)
    types = [e.type for e in run(go())]
    assert types.count("audio-start") == 2 and types.count("audio-stop") == 2, types
    assert types[-1] == "synthesize-stopped"


def test_unknown_voice_and_events_out_of_order_get_error_events(port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            replies = []
            for event in (Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event(),
                          AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0" * 160).event(),
                          AudioStop().event(),
                          SynthesizeChunk(text="orphan").event(),
                          AudioStart(rate=12345, width=2, channels=1).event()):
                await client.write_event(event)
                replies.append(Error.from_event((await events_until(client, "error"))[-1]))
            # the connection still works afterwards
            await client.write_event(Describe().event())
            await events_until(client, "info")
            return replies
    errors = run(go())
    assert "nobody" in errors[0].text
    assert "before audio-start" in errors[1].text and "before audio-start" in errors[2].text
    assert "synthesize-start" in errors[3].text
    assert "12345" in errors[4].text


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("header", [
    b"this is not json\n",
    b'{"data": {}}\n',                                            # no type
    json.dumps({"type": "audio-chunk", "payload_length": 1 << 30}).encode() + b"\n",
    json.dumps({"type": "describe", "data_length": 50}).encode() + b"\n{}",   # short data
])
def test_bad_headers_get_an_error_and_a_closed_connection(port, header):
    reply = raw_exchange(port, header)
    first = json.loads(reply.split(b"\n")[0])
    assert first["type"] == "error"


def test_a_client_that_vanishes_mid_stream_does_not_disturb_others(port, speech):
    wav = speech(COMMAND)

    async def vanish():
        client = AsyncTcpClient("127.0.0.1", port)
        await client.connect()
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=wav.pcm[:32000]).event())
        await client.disconnect()

    async def go():
        await vanish()
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe().event())
            await send_audio(client, wav.pcm, 16000)
            return Transcript.from_event((await events_until(client, "transcript"))[-1]).text
    text = run(go())
    assert word_error_rate(COMMAND, text) <= 0.25, text


def detect(port: int, pcm: bytes, names=None) -> list:
    from wyoming.wake import Detect

    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Detect(names=names).event())
            await send_audio(client, pcm, 16000)
            return await events_until(client, "detection", "not-detected")
    return run(go())


def test_streamed_hey_mycroft_is_detected(port, speech):
    from wyoming.wake import Detection
    got = detect(port, speech("Hey Mycroft", pad_ms=1000).pcm, ["hey_mycroft"])
    assert got[-1].type == "detection"
    detection = Detection.from_event(got[-1])
    assert detection.name == "hey_mycroft" and 500 < detection.timestamp < 3000


def test_other_speech_is_not_detected(port, speech):
    assert detect(port, speech(COMMAND).pcm)[-1].type == "not-detected"


def test_unknown_wake_model_gets_an_error_event(port):
    from wyoming.wake import Detect

    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Detect(names=["hey_nobody"]).event())
            return Error.from_event((await events_until(client, "error"))[-1])
    assert "hey_nobody" in run(go()).text


def test_describe_lists_wake_words(port):
    async def go():
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event((await events_until(client, "info"))[-1])
    names = [m.name for m in run(go()).wake[0].models]
    assert names[0] == "hey_mycroft" and "alexa" in names
