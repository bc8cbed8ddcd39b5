"""Clients of the other protocols, as the compatibility tests and the wake tests use them: a Hermes
(Rhasspy) satellite on the Hermes login, and Wyoming helpers that read events and send audio."""

from __future__ import annotations

import asyncio
import io
import queue
import time
import uuid

from rhasspyhermes.audioserver import AudioFrame
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from appliance.audio.pcm import wav_bytes
from appliance.commands.client import send_offset
from appliance.compat import hermes_account
from mqtt.client import Connection, Credentials


class Satellite:
    """A Hermes satellite: the Hermes login, subscribed to everything under hermes/."""

    def __init__(self, hearth):
        login = hermes_account.ensure_login(hearth.settings.data_dir)
        self.inbox: queue.Queue = queue.Queue()
        creds = Credentials("127.0.0.1", hearth.settings.broker.port, login.username, login.password)
        self.conn = Connection(creds, lambda t, p: self.inbox.put((t, p)), ["hermes/#"],
                               client_id=f"sat-{uuid.uuid4().hex[:6]}").start()

    def send(self, message, **topic_args) -> None:
        payload = message.payload()
        self.conn.publish(message.topic(**topic_args), payload)

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.conn.publish(topic, payload)

    def expect(self, match, timeout: float = 60.0, forbid=None) -> tuple[str, bytes]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            assert forbid is None or not forbid(topic, payload), f"unexpected {topic}: {payload[:200]!r}"
            if match(topic, payload):
                return topic, payload
        raise AssertionError("expected message did not arrive")

    def nothing_matching(self, match, within: float) -> list[str]:
        """No message matching arrives for `within` s. Positive control: a marker published at the
        end of the window must come back through the same subscription (it was listening).
        Returns the topics that did arrive."""
        time.sleep(within)
        marker = f"hermes/hearth-test/marker/{uuid.uuid4().hex[:8]}"
        self.publish(marker, b"{}")
        deadline = time.monotonic() + 10
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            assert not match(topic, payload), f"unexpected {topic}: {payload[:200]!r}"
            seen.append(topic)
            if topic == marker:
                return seen
        raise AssertionError("the marker did not come back: the subscription was not listening")

    def stream(self, site: str, wav, realtime: bool = False) -> None:
        src = io.BytesIO(wav_bytes(wav.pcm, wav.format.rate))
        t0, sent = time.monotonic(), 0.0          # not realtime: as fast as Hearth accepts (appliance.commands.client's pace)
        for chunk in AudioFrame.iter_wav_chunked(src, frames_per_chunk=512, live_delay=realtime):
            if not realtime:
                time.sleep(max(0.0, t0 + send_offset(sent, False) - time.monotonic()))
                sent += 512 / wav.format.rate
            self.send(AudioFrame(wav_bytes=chunk), site_id=site)

    def close(self) -> None:
        self.conn.stop()


async def events_until(client: AsyncTcpClient, *types: str) -> list:
    got = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed; got {[e.type for e in got]}"
        got.append(event)
        if event.type in types:
            return got


async def send_audio(client: AsyncTcpClient, pcm: bytes, rate: int, chunk_bytes: int = 2048) -> None:
    """As fast as Hearth accepts audio (limits.audio_rate): appliance.commands.client's pace."""
    await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
    t0 = time.monotonic()
    for i in range(0, len(pcm), chunk_bytes):
        await asyncio.sleep(max(0.0, t0 + send_offset(i / (rate * 2), False) - time.monotonic()))
        await client.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + chunk_bytes]).event())
    await client.write_event(AudioStop().event())
