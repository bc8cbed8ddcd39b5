"""A simulated satellite (`hearth client satellite --wav F`): streams a WAV as if from a microphone,
in real time, then silence, and reports everything Hearth sends back to it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.audio.pcm import Wav
from appliance.commands.client import DeviceLink, Received
from mqtt import topics
from mqtt import wake as w
from mqtt.messages import Error, SttFinal, TtsEnd, TtsStart


def last_will(device: str) -> tuple[str, bytes, int, bool]:
    """The MQTT will a satellite sets when it connects: Hearth ends its streams if it vanishes."""
    return (w.wake_end(device), w.WakeEnd(stream="", reason="lost").to_payload(), 1, False)


@dataclass
class Heard:
    """What one satellite received, in order."""

    events: list[tuple[str, object]] = field(default_factory=list)
    reply_audio: int = 0

    def of(self, kind: str) -> list:
        return [m for k, m in self.events if k == kind]

    @property
    def feedback(self) -> list[str]:
        return [m.state for m in self.of("feedback")]


def decode(link: DeviceLink, item: Received) -> tuple[str, object] | None:
    d = link.device
    table = {w.wake_detected(d): ("detected", w.WakeDetected), w.stand_down(d): ("stand-down", w.WakeStandDown),
             w.feedback(d): ("feedback", w.Feedback), topics.stt_final(d): ("final", SttFinal),
             topics.tts_start(d): ("tts-start", TtsStart), topics.tts_end(d): ("tts-end", TtsEnd),
             topics.error(d): ("error", Error)}
    if item.topic in table:
        kind, cls = table[item.topic]
        return kind, cls.from_payload(item.payload)
    if item.topic.startswith(topics.device(d, "tts", "audio") + "/"):
        return "tts-audio", len(item.payload)
    return None


def describe(kind: str, msg) -> str:
    match kind:
        case "detected": return f"wake word {msg.model} detected (score {msg.score:.3f}, {msg.level_dbfs:.1f} dBFS)"
        case "stand-down": return f"stand down: {msg.winner} answers"
        case "feedback": return f"feedback: {msg.state}"
        case "final": return f"transcript: {msg.text!r} ({msg.endpoint}, {msg.processing_ms:.0f} ms)"
        case "tts-start": return f"reply audio starts ({msg.rate} Hz, voice {msg.voice})"
        case "tts-end": return f"reply audio ends ({msg.audio_s:.2f} s)"
        case "error": return f"error {msg.code}: {msg.message}"
    return f"{kind}: {msg}"


def stream(link: DeviceLink, wav: Wav, stream_id: str, tail_s: float = 3.0, frame_ms: int = 30,
           stop: threading.Event | None = None, **start) -> None:
    """Open a stream and send the WAV, then `tail_s` of silence, at the speed of a microphone."""
    fmt = wav.format
    link.publish(w.wake_start(link.device), w.WakeStart(stream=stream_id, rate=fmt.rate, width=fmt.width,
                                                        channels=fmt.channels, **start).to_payload())
    step = fmt.bytes_per_second * frame_ms // 1000
    step -= step % (fmt.width * fmt.channels)
    pcm = wav.pcm + b"\0" * int(fmt.bytes_per_second * tail_s)
    topic = w.wake_audio(link.device, stream_id)
    t0 = time.monotonic()
    for i in range(0, len(pcm), step):
        if stop is not None and stop.is_set():
            return
        link.publish(topic, pcm[i:i + step], qos=0)
        time.sleep(max(0.0, t0 + (i + step) / fmt.bytes_per_second - time.monotonic()))


def run(link: DeviceLink, wav: Wav, tail_s: float = 3.0, settle_s: float = 8.0,
        on_event: Callable[[str, object], None] | None = None, **start) -> Heard:
    """Stream the WAV; collect what arrives until the reply is over (or `settle_s` after the audio)."""
    stream_id = uuid.uuid4().hex[:12]
    sender = threading.Thread(target=stream, args=(link, wav, stream_id, tail_s), kwargs=start, daemon=True)
    sender.start()
    heard = Heard()
    deadline = None
    busy = False
    while True:
        if deadline is None and not sender.is_alive():
            deadline = time.monotonic() + settle_s
        if deadline is not None and (not busy or time.monotonic() > deadline):
            break
        try:
            item = link.inbox.get(timeout=0.1)
        except Exception:
            continue
        event = decode(link, item)
        if event is None:
            continue
        kind, msg = event
        if kind == "tts-audio":
            heard.reply_audio += msg
            continue
        heard.events.append(event)
        if kind == "feedback":
            busy = msg.state not in ("idle", "error")
        if on_event:
            on_event(kind, msg)
    link.publish(w.wake_end(link.device), w.WakeEnd(stream=stream_id).to_payload())
    return heard
