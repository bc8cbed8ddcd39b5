"""Partials run apart from finals (appliance/stt/decoder.py, issue 13): a final submitted while a
partial decode is running does not wait for it, and the partial engine's threads run at a lower
CPU priority. Real tiny.en engines, real speech (espeak-ng)."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from appliance.config import SttSettings
from appliance.stt.decoder import FINAL, PARTIAL, PARTIAL_NICE, DecodeJob, Decoder
from appliance.stt.engines import load_engine, partial_engine
import numpy as np

from voices import in_room, say


# the full 30 s window: decodes long enough (~350 ms) that a 50 ms head start decides a shared race
SLOW = SttSettings(window_s=0)


@pytest.fixture(scope="module")
def engine():
    return load_engine(SLOW)


def _pcm(text: str) -> bytes:
    return np.clip(in_room([say(None, "espeak", text)], seed=3), -32768, 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def pcm():
    return _pcm("set a timer for ten minutes please")


@pytest.fixture(scope="module")
def long_pcm():
    """A partial of a long utterance: about three times the final's tokens to decode, so the race's
    outcome is decided by the engines, not by a few ms of other work on the machine."""
    return _pcm("set a timer for ten minutes please, and remind me to call the plumber tomorrow "
                "morning about the leaking pipe under the kitchen sink")


def _race(decoder: Decoder, pcm: bytes, partial_pcm: bytes) -> list[str]:
    """A partial (of `partial_pcm`), then 50 ms later a final of `pcm`: the order their results come back."""
    order: list[str] = []
    done = threading.Event()

    def finished(job, text, ms):
        assert text and "timer" in text.lower(), text
        order.append(job.kind)
        if len(order) == 2:
            done.set()

    decoder.submit(DecodeJob(("d", "p"), PARTIAL, partial_pcm, len(partial_pcm), "en", finished))
    time.sleep(0.05)
    decoder.submit(DecodeJob(("d", "f"), FINAL, pcm, len(pcm), "en", finished))
    assert done.wait(60), order
    return order


def test_a_final_does_not_wait_for_a_running_partial(engine, pcm, long_pcm):
    apart = Decoder(engine, partial_engine=partial_engine(SLOW, engine))
    shared = Decoder(engine)                     # control: one worker, the final waits its turn
    try:
        deadline = time.monotonic() + 60
        while apart.partial_busy and time.monotonic() < deadline:   # the second copy loads on its thread
            time.sleep(0.05)
        assert not apart.partial_busy
        assert _race(shared, pcm, long_pcm) == [PARTIAL, FINAL]
        assert _race(apart, pcm, long_pcm) == [FINAL, PARTIAL]
        # the partial engine's threads were made at the partial thread's priority
        nice = []
        for t in psutil.Process().threads():
            try:
                nice.append(os.getpriority(os.PRIO_PROCESS, t.id))
            except OSError:
                pass
        assert PARTIAL_NICE in nice and 0 in nice
    finally:
        apart.stop()
        shared.stop()


def test_no_partial_engine_where_it_is_not_needed(engine):
    assert partial_engine(SttSettings(partial_threads=0), engine) is None
    assert partial_engine(SttSettings(partial_interval_ms=0), engine) is None
    assert partial_engine(SttSettings(), engine) is not None
