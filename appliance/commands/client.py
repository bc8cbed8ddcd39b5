"""`hearth client ...`: talk to a running Hearth over MQTT as a device would.

The broker and login come from `--broker mqtt://USER:PASSWORD@HOST:PORT`, else from the data
directory's config and the local client account that `hearth run` created. The device id is the
login's user name (the broker ACL confines every login to `hearth/<user>/#`).
"""

from __future__ import annotations

import queue
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from appliance.state.accounts import CLI_USER, LocalAccounts
from appliance.audio.pcm import Wav, wav_bytes
from appliance.state.config import Settings
from mqtt import topics
from mqtt.client import Connection, Credentials
from mqtt.messages import Error, SttEnd, SttFinal, SttPartial, SttStart, TtsEnd, TtsSay, TtsStart

# Not realtime means as fast as Hearth accepts (limits.audio_rate after limits.audio_burst_s),
# with a margin for jitter: this much at once, then this many times real time.
FAST_BURST_S = 1.0
FAST_RATE = 1.3


def send_offset(sent_s: float, realtime: bool) -> float:
    """Seconds after the first frame at which audio `sent_s` seconds into a recording may go out."""
    return sent_s if realtime else max(0.0, sent_s - FAST_BURST_S) / FAST_RATE


class ClientError(RuntimeError):
    """Something the person can fix: the message says what."""


def credentials(settings: Settings, broker_url: str | None) -> Credentials:
    if broker_url:
        u = urlparse(broker_url)
        if u.scheme != "mqtt" or not u.hostname or not u.username:
            raise ClientError("--broker must look like mqtt://USER:PASSWORD@HOST:PORT")
        return Credentials(u.hostname, u.port or 1883, unquote(u.username), unquote(u.password or ""))
    try:
        login = LocalAccounts(settings.data_dir).login(CLI_USER)
    except FileNotFoundError as exc:
        raise ClientError(f"{exc} (or pass --broker)") from None
    return Credentials(settings.broker.host, settings.broker.port, login.username, login.password)


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float


class DeviceLink:
    """A device's connection: its own topics in, everything it receives queued with arrival time."""

    def __init__(self, creds: Credentials, device: str | None = None, will=None):
        self.device = device or creds.username
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.conn = Connection(creds, self._receive, [topics.device(self.device, "#")],
                               client_id=f"{self.device}-{uuid.uuid4().hex[:6]}", will=will)

    def _receive(self, topic: str, payload: bytes) -> None:
        self.inbox.put(Received(topic, payload, time.monotonic()))

    def __enter__(self) -> "DeviceLink":
        try:
            self.conn.start()
        except Exception as exc:
            raise ClientError(str(exc)) from None
        return self

    def __exit__(self, *exc) -> None:
        self.conn.stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.conn.publish(topic, payload, qos)

    def next(self, deadline: float) -> Received:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ClientError("Hearth did not answer in time; is it running? (./build.sh run)")
        try:
            return self.inbox.get(timeout=left)
        except queue.Empty:
            raise ClientError("Hearth did not answer in time; is it running? (./build.sh run)") from None

    def check_error(self, item: Received, ref: str) -> None:
        if item.topic == topics.error(self.device):
            err = Error.from_payload(item.payload)
            if err.ref in (None, ref):
                raise ClientError(f"{err.code}: {err.message}")


@dataclass
class Spoken:
    pcm: bytes
    rate: int
    first_audio_s: float
    total_s: float
    end: TtsEnd


def say(link: DeviceLink, text: str, voice: str | None = None, timeout: float = 60.0) -> Spoken:
    request = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    link.publish(topics.tts_say(link.device), TtsSay(request=request, text=text, voice=voice).to_payload())
    deadline = t0 + timeout
    chunks: list[bytes] = []
    rate, first = 0, None
    while True:
        item = link.next(deadline)
        link.check_error(item, request)
        if item.topic == topics.tts_start(link.device):
            start = TtsStart.from_payload(item.payload)
            if start.request == request:
                rate = start.rate
        elif item.topic == topics.tts_audio(link.device, request):
            first = first if first is not None else item.at - t0
            chunks.append(item.payload)
        elif item.topic == topics.tts_end(link.device):
            end = TtsEnd.from_payload(item.payload)
            if end.request == request:
                return Spoken(b"".join(chunks), rate, first or 0.0, item.at - t0, end)


@dataclass
class Heard:
    final: SttFinal
    partials: list[str]
    latency_s: float            # from the last frame sent to the final transcript (negative: it came first)
    started_at: float = 0.0     # monotonic time of the first frame
    arrived_at: float = 0.0     # monotonic time the final transcript arrived


def transcribe(link: DeviceLink, wav: Wav, endpoint: str = "device", frame_ms: int = 30,
               realtime: bool = False, timeout: float = 60.0, on_partial=None, turn: str = "auto",
               partials: bool = True) -> Heard:
    session = uuid.uuid4().hex[:12]
    fmt = wav.format
    link.publish(topics.stt_start(link.device), SttStart(
        session=session, rate=fmt.rate, width=fmt.width, channels=fmt.channels, endpoint=endpoint,
        turn=turn, partials=partials).to_payload())
    step = fmt.bytes_per_second * frame_ms // 1000
    step -= step % (fmt.width * fmt.channels)
    audio_topic = topics.stt_audio(link.device, session)
    t_start = time.monotonic()
    for i in range(0, len(wav.pcm), step):
        if not realtime:
            time.sleep(max(0.0, t_start + send_offset(i / fmt.bytes_per_second, False) - time.monotonic()))
        link.publish(audio_topic, wav.pcm[i:i + step], qos=0)
        if realtime:            # each frame goes out when its recording would have ended
            time.sleep(max(0.0, t_start + send_offset((i + step) / fmt.bytes_per_second, True) - time.monotonic()))
    t_last = time.monotonic()
    if endpoint == "device":
        link.publish(topics.stt_end(link.device), SttEnd(session=session).to_payload())
    partials: list[str] = []
    deadline = t_last + timeout
    while True:
        item = link.next(deadline)
        link.check_error(item, session)
        if item.topic == topics.stt_partial(link.device):
            p = SttPartial.from_payload(item.payload)
            if p.session == session:
                partials.append(p.text)
                if on_partial:
                    on_partial(p.text)
        elif item.topic == topics.stt_final(link.device):
            final = SttFinal.from_payload(item.payload)
            if final.session == session:
                return Heard(final, partials, item.at - t_last, t_start, item.at)


def write_wav(path: str, spoken: Spoken) -> None:
    with open(path, "wb") as fh:
        fh.write(wav_bytes(spoken.pcm, spoken.rate))
