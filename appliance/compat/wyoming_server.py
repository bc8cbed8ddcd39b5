"""The Wyoming server (Home Assistant's voice protocol) on one TCP port: STT, TTS and wake word.

Each connection is one asyncio handler on the server's own event-loop thread. Speech to text
goes into the one SessionManager (device id `wyoming:<n>`) and so into the one decode queue;
text to speech comes from the one speaker (service.speaker.stream); wake words from the one
wake path. Events out of order get a Wyoming `error` event; a header that cannot be read, or a
payload over the limits, closes that connection; other clients never notice.

Every listener has limits a household never reaches (docs/security.md): at most
`[wyoming] max_connections` in all and `max_connections_per_address` from one address, checked at
accept (a refused connection gets an `error` event and is closed at once, so it holds no
descriptor); its first event within `first_event_s`, then one at least every `idle_timeout_s`.

Wyoming has no login: a client's address must be allowed by a person (service.wyoming_access,
appliance/devices/wyoming_clients.py). Until then `describe` is answered and every other event
gets an `error` event with code `not_approved`, and the address waits on the Devices page. When
a person revokes an address, its open connections are cut.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import Counter
import json
import logging
import threading
import time
import uuid

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped
from wyoming.wake import Detect

from appliance.compat.wyoming_info import build_info
from appliance.compat.wyoming_tts import SentenceStream, synthesize
from appliance.devices.wyoming_clients import normalize
from appliance.voice.shares import peer_client, shed
from mqtt.messages import AudioFormat, ProtocolError, SttStart

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 64 * 1024
NOT_APPROVED = "not_approved"      # the error code for a client whose address nobody allowed yet
TOO_MANY = "too_many_connections"
BACKLOG = 1024                     # the kernel's accept queue for the port (asyncio's default is 100)
_counter = itertools.count(1)


class BadEvent(ValueError):
    """An event the server cannot read: the connection is closed after an error event."""


async def read_event(reader: asyncio.StreamReader, max_payload: int) -> Event | None:
    """wyoming's async_read_event with limits: None at a clean end, BadEvent on a bad header."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadEvent("connection closed inside an event header") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadEvent(f"event header longer than {MAX_HEADER_BYTES} bytes") from None
    try:
        header = json.loads(line)
        kind = header["type"]
        data = header.get("data") or {}
        data_length = int(header.get("data_length") or 0)
        payload_length = int(header.get("payload_length") or 0)
        if not isinstance(kind, str) or not isinstance(data, dict):
            raise TypeError("type must be a string and data an object")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BadEvent(f"bad event header ({exc!r:.200})") from None
    if not 0 <= data_length <= MAX_DATA_BYTES or not 0 <= payload_length <= max_payload:
        raise BadEvent(f"{kind}: data_length {data_length} / payload_length {payload_length} over the limits "
                       f"({MAX_DATA_BYTES} / {max_payload} bytes)")
    try:
        if data_length:
            more = json.loads(await reader.readexactly(data_length))
            if not isinstance(more, dict):
                raise BadEvent(f"{kind}: data must be a JSON object")
            data.update(more)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise BadEvent(f"{kind}: connection closed inside the event") from None
    except (ValueError, RecursionError) as exc:
        raise BadEvent(f"{kind}: data is not JSON ({exc!r:.200})") from None
    return Event(type=kind, data=data, payload=payload)


class SessionSink:
    """Delivers the session manager's results (audio thread) into a connection's asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, results: asyncio.Queue, sinks: dict, device: str):
        self.loop, self.results, self.sinks, self.device = loop, results, sinks, device
        self.closed = False

    def _put(self, item) -> None:
        if self.closed:
            if item[0] != "partial":
                self.sinks.pop(self.device, None)     # the abandoned session has ended: forget the sink
            return
        try:
            self.loop.call_soon_threadsafe(self.results.put_nowait, item)
        except RuntimeError:                          # the event loop is gone (shutting down)
            pass

    def partial(self, msg) -> None: self._put(("partial", msg))
    def final(self, msg) -> None: self._put(("final", msg))
    def error(self, exc) -> None: self._put(("error", exc))


class HearthHandler(AsyncEventHandler):
    def __init__(self, server: "WyomingServer", reader, writer):
        super().__init__(reader, writer)
        self.server = server
        self.service = server.service
        self.address = normalize((writer.get_extra_info("peername") or ("0.0.0.0",))[0])
        self.device = f"wyoming:{next(_counter)}"
        self.client = peer_client("wyoming", writer)   # its fair share: every connection from one address is one client
        self.results: asyncio.Queue = asyncio.Queue()
        self.sink = SessionSink(asyncio.get_running_loop(), self.results, self.service.sessions.sinks, self.device)
        self.service.sessions.sinks[self.device] = self.sink
        self.mode: str | None = None                 # transcribe | detect, set by the event before audio-start
        self.language: str | None = None
        self.audio_format: AudioFormat | None = None
        self.session: str | None = None               # the open STT session
        self.streamed = ""                            # transcript text sent as transcript-chunk events
        self.stream_started = False
        self.tts_stream: SentenceStream | None = None  # synthesize-start .. synthesize-stop
        self.detector = None
        self._forwarder = asyncio.create_task(self._forward_results())
        self.opened = time.monotonic()
        server.handlers.add(self)

    async def run(self) -> None:
        try:
            wait = self.service.sessions.guard.cooling(self.client)
            if wait:    # this address flooded a moment ago: its new connections are not even read until then
                await self._error(f"audio came faster than real time from {self.address}; "
                                  f"try again in {wait:.0f} s", "too_fast")
                return
            first = True
            while True:
                # the first event within first_event_s; later ones within idle_timeout_s, unless a
                # transcript is on its way (the session has its own bounds)
                limit = self.server.first_event_s if first else None if self.session else self.server.idle_timeout_s
                try:
                    event = await asyncio.wait_for(read_event(self.reader, self.server.max_payload), limit)
                except BadEvent as exc:
                    await self._error(str(exc), "bad-event")
                    break
                except asyncio.TimeoutError:
                    self.service.metrics.inc("hearth_wyoming_connections_timed_out_total")
                    await self._error(f"no {'first ' if first else ''}event within {limit:.0f} s: closed", "timeout")
                    break
                first = False
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        self.service.metrics.inc("hearth_wyoming_events_total")
        if not self.server.access.is_allowed(self.address):
            await self._not_approved(event.type)
            if not Describe.is_type(event.type):
                return True
        try:
            return await self._handle(event)
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            await self._error(getattr(exc, "message", None) or f"{event.type}: bad event data ({exc!r})",
                              getattr(exc, "code", "bad-event"))
            return True

    async def _handle(self, event: Event) -> bool:
        t = event.type
        if Describe.is_type(t):
            await self.write_event(self.server.info().event())
        elif Transcribe.is_type(t):
            self.mode, self.language = "transcribe", Transcribe.from_event(event).language
        elif Detect.is_type(t):
            self.detector = self.server.wake_detector(Detect.from_event(event).names)
            self.mode = "detect"
        elif AudioStart.is_type(t):
            await self._audio_start(AudioStart.from_event(event))
        elif AudioChunk.is_type(t):
            await self._audio_chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(t):
            await self._audio_stop()
        elif SynthesizeStart.is_type(t):
            start = SynthesizeStart.from_event(event)
            self.tts_stream = SentenceStream(start.voice.name if start.voice else None,
                                             self.server.max_stream_chars, self.service.settings.tts.max_text_chars)
        elif SynthesizeChunk.is_type(t):
            if self.tts_stream is None:
                raise ProtocolError("out-of-order", "synthesize-chunk before synthesize-start")
            stream = self.tts_stream
            for sentence in stream.feed(SynthesizeChunk.from_event(event).text):   # too_large past the cap
                await synthesize(self, sentence, stream.voice)
        elif SynthesizeStop.is_type(t):
            if self.tts_stream is None:
                raise ProtocolError("out-of-order", "synthesize-stop before synthesize-start")
            stream, self.tts_stream = self.tts_stream, None
            for sentence in stream.rest():
                await synthesize(self, sentence, stream.voice)
            await self.write_event(SynthesizeStopped().event())
        elif Synthesize.is_type(t):
            if self.tts_stream is None:           # inside a stream it only repeats the text, for old servers
                synth = Synthesize.from_event(event)
                await synthesize(self, synth.text, synth.voice.name if synth.voice else None)
        return True

    # speech to text
    async def _audio_start(self, start: AudioStart) -> None:
        if self.session is not None or self.audio_format is not None:
            raise ProtocolError("out-of-order", "audio-start while audio is already streaming; send audio-stop first")
        fmt = AudioFormat(start.rate, start.width, start.channels)
        fmt.check("audio-start", None)
        self.audio_format = fmt
        if self.mode == "detect":
            self.detector.reset()
            return
        self.mode = "transcribe"                  # audio without transcribe: transcribe it (as Wyoming STT servers do)
        self.session = uuid.uuid4().hex[:16]
        self.streamed, self.stream_started = "", False
        self.service.sessions.start(self.device, SttStart(
            session=self.session, rate=fmt.rate, width=fmt.width, channels=fmt.channels, endpoint="device",
            partials=True, language=self.language), client=self.client)

    async def _audio_chunk(self, chunk: AudioChunk) -> None:
        fmt = self.audio_format
        if fmt is None:
            raise ProtocolError("out-of-order", "audio-chunk before audio-start")
        if (chunk.rate, chunk.width, chunk.channels) != (fmt.rate, fmt.width, fmt.channels):
            raise ProtocolError("bad_audio_format", f"audio-chunk is {chunk.rate} Hz/{chunk.width * 8} bit/"
                                f"{chunk.channels} ch but audio-start said {fmt.rate}/{fmt.width * 8}/{fmt.channels}")
        if self.mode == "detect":
            for name, timestamp in await asyncio.to_thread(self.detector.feed, chunk.audio, fmt):
                await self.server.detected(self, name, timestamp)
        elif self.session is not None:
            self.service.sessions.audio(self.device, self.session, chunk.audio)

    async def _audio_stop(self) -> None:
        if self.audio_format is None:
            raise ProtocolError("out-of-order", "audio-stop before audio-start")
        self.audio_format = None
        if self.mode == "detect":
            await self.server.not_detected(self)
        elif self.session is not None:
            self.service.sessions.end(self.device, self.session)   # the transcript comes through the sink

    async def _forward_results(self) -> None:
        while True:
            kind, msg = await self.results.get()
            if kind == "partial" and msg.session == self.session:
                await self._stream_partial(msg.text)
            elif kind == "final" and msg.session == self.session:
                self.session = None
                await self.write_event(Transcript(text=msg.text, language=self.language).event())
                if self.stream_started:
                    await self.write_event(TranscriptStop().event())
            elif kind == "error":
                if msg.ref is None or msg.ref == self.session:
                    self.session = None
                await self._error(msg.message, msg.code)

    async def _stream_partial(self, text: str) -> None:
        """Transcript chunks only append: send what a new partial adds to the text sent so far."""
        if not text.startswith(self.streamed) or text == self.streamed:
            return
        if not self.stream_started:
            self.stream_started = True
            await self.write_event(TranscriptStart(language=self.language).event())
        await self.write_event(TranscriptChunk(text=text[len(self.streamed):]).event())
        self.streamed = text

    async def _not_approved(self, event_type: str) -> None:
        """A client from an address nobody allowed: it waits on the Devices page; only describe works."""
        access = self.server.access
        if access.knock(self.address, event_type):
            await asyncio.to_thread(access.record, self.address)
        if Describe.is_type(event_type):
            return
        self.service.metrics.inc("hearth_wyoming_refused_total")
        await self.write_event(Error(text=f"Hearth has not approved Wyoming clients from {self.address}: allow this "
                                          f"address on Hearth's Devices page, or run: hearth devices wyoming allow "
                                          f"{self.address}", code=NOT_APPROVED).event())

    async def revoked(self) -> None:
        """A person revoked this client's address: say so, and close the connection."""
        await self.close_with(f"a person revoked Wyoming access for {self.address} on Hearth", NOT_APPROVED)

    async def close_with(self, text: str, code: str) -> None:
        try:
            await asyncio.wait_for(self.write_event(Error(text=text, code=code).event()), 1)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError):
            pass
        self.writer.close()
        self.reader.feed_eof()

    async def _error(self, text: str, code: str | None) -> None:
        log.info("wyoming error to %s: %s %s", self.device, code, text)
        self.service.metrics.error(time.time(), f"{self.device}: {code}")
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, RuntimeError):
            pass
        shed(self.writer, code, self.service.settings.limits.audio_cooldown_s)   # refused its share: stop reading it

    async def disconnect(self) -> None:
        self.server.handlers.discard(self)
        self._forwarder.cancel()
        if self.session is not None:
            self.sink.closed = True               # the session times out and the sink removes itself then
        else:
            self.service.sessions.sinks.pop(self.device, None)


class Refused:
    """A connection over the caps: one `error` event, then closed; it never becomes a handler."""

    def __init__(self, writer, text: str):
        self.writer = writer
        # the header with its data inline (Wyoming readers accept both forms): nothing to await
        writer.write((json.dumps({"type": "error", "data": {"text": text, "code": TOO_MANY}}) + "\n").encode())

    async def run(self) -> None:
        self.writer.close()

    async def stop(self) -> None:
        self.writer.close()


class WyomingServer:
    """The asyncio TCP server on its own thread."""

    def __init__(self, service):
        self.service = service
        s = service.settings
        self.bind, self.port = s.wyoming.bind, s.wyoming.port
        self.max_connections = s.wyoming.max_connections
        self.per_address = s.wyoming.max_connections_per_address
        self.first_event_s, self.idle_timeout_s = s.wyoming.first_event_s, s.wyoming.idle_timeout_s
        self.max_payload = max(s.limits.max_frame_bytes, 1 << 16)
        self.max_stream_chars = s.wyoming.max_stream_chars
        self.access = service.wyoming_access           # who may use it (the device room's list)
        self.handlers: set[HearthHandler] = set()       # open connections (the event loop's thread only)
        self.loop = asyncio.new_event_loop()
        self._server: AsyncTcpServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wyoming", daemon=True)
        self._wake = None                          # the wake path's adapter (appliance/compat/wyoming_wake.py)
        self._info = None

    def info(self):
        if self._info is None:
            from appliance.version import VERSION
            self._info = build_info(self.service, self._wake.models if self._wake else [], VERSION)
        return self._info

    def accept(self, reader, writer):
        """At accept (the loop's thread): a handler, or a refusal when the caps are reached. When all
        slots are taken, a newcomer from a quieter address takes the busiest address's oldest slot."""
        address = normalize((writer.get_extra_info("peername") or ("0.0.0.0",))[0])
        per = Counter(h.address for h in self.handlers if not getattr(h, "evicted", False))
        if per[address] >= self.per_address:
            return self._refuse(writer, f"{self.per_address} Wyoming connections from {address} are open already")
        if sum(per.values()) >= self.max_connections:
            busiest, n = per.most_common(1)[0]
            if n <= per[address] + 1:
                return self._refuse(writer, f"all {self.max_connections} Wyoming connections are in use")
            oldest = min((h for h in self.handlers if h.address == busiest and not getattr(h, "evicted", False)),
                         key=lambda h: h.opened)
            oldest.evicted = True
            oldest.closing = self.loop.create_task(oldest.close_with(
                f"closed for a client from a quieter address: {busiest} holds {n} connections", TOO_MANY))
            self.service.metrics.inc("hearth_wyoming_connections_evicted_total")
        return HearthHandler(self, reader, writer)

    def _refuse(self, writer, text: str) -> Refused:
        self.service.metrics.inc("hearth_wyoming_connections_refused_total")
        return Refused(writer, text)

    def cut(self, address: str) -> None:
        """Close every connection from a revoked address (any thread)."""
        def _cut():
            for handler in [h for h in self.handlers if h.address == address]:
                handler.closing = self.loop.create_task(handler.revoked())   # held: the loop keeps weak refs
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(_cut)

    def wake_detector(self, names):
        if self._wake is None:
            raise ProtocolError("not-supported", "this Hearth has no wake-word engine")
        return self._wake.detector(names)

    async def detected(self, handler: HearthHandler, name: str, timestamp: int) -> None:
        from wyoming.wake import Detection
        await handler.write_event(Detection(name=name, timestamp=timestamp).event())

    async def not_detected(self, handler: HearthHandler) -> None:
        from wyoming.wake import NotDetected
        if not handler.detector.hit:
            await handler.write_event(NotDetected().event())

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._server = AsyncTcpServer(self.bind, self.port)
        try:
            # wyoming's start() with a deep accept queue: a burst of connections is accepted (and the
            # ones over the caps refused) at once, not trickled in by SYN retries for a minute
            self._server._server = await asyncio.start_server(
                functools.partial(self._server._handler_callback, self.accept), self.bind, self.port, backlog=BACKLOG)
            # the effective port (port 0 in tests picks a free one)
            self.port = self._server._server.sockets[0].getsockname()[1]
        except OSError as exc:
            log.error("Wyoming server could not listen on %s:%s: %s", self.bind, self.port, exc)
            self._server = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._server is not None:
            log.info("Wyoming server on %s:%s", self.bind, self.port)

    def stop(self) -> None:
        async def _stop():
            if self._server is not None:
                await self._server.stop()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def install(service) -> None:
    if not service.settings.wyoming.enabled:
        return
    server = WyomingServer(service)
    service.wyoming = server
    service.wyoming_access.on_revoked.append(server.cut)
    from appliance.compat import wyoming_wake
    server._wake = wyoming_wake.adapter(service)
    service.after_start.append(server.start)
    service._stoppers.insert(0, server.stop)
