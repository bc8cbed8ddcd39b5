"""One whole utterance through the shared decode queue (the HTTP /v1/stt edge uses it), so a
Mycroft device waits in the same fair queue as the MQTT devices and uses the same engine."""

from __future__ import annotations

import threading
import uuid

from appliance.stt.decoder import FINAL, DecodeJob, Decoder


class DecodeFailed(RuntimeError):
    pass


def transcribe(decoder: Decoder, pcm: bytes, language: str | None, device: str, timeout: float = 60.0) -> str:
    """Raises QueueFull when the queue is full, DecodeFailed when the engine failed or took too long."""
    done = threading.Event()
    result: list = []

    def finished(job: DecodeJob, text: str | None, ms: float) -> None:
        result.append(text)
        done.set()

    engine = decoder.engine
    stream = engine.open_stream() if engine.streaming else None
    key = (device, f"http-{uuid.uuid4().hex[:8]}")
    decoder.submit(DecodeJob(key=key, kind=FINAL, audio=pcm, length=len(pcm), language=language,
                             done=finished, stream=stream))
    if not done.wait(timeout):
        decoder.forget(key)
        raise DecodeFailed(f"no transcript within {timeout:.0f} s")
    if result[0] is None:
        raise DecodeFailed("the speech engine failed on this audio")
    return result[0].strip()
