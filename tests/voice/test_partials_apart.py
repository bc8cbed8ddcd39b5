"""Partials run apart from finals (appliance/stt/decoder.py, issue 13): a final submitted while a
partial decode of the same audio is running stays near the final alone (and the shared control
is clearly slower), and the threads this decoder made for partials run at a lower CPU priority.
Real tiny.en engines, real speech (espeak-ng)."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from appliance.state.config import SttSettings
from appliance.stt.decoder import FINAL, PARTIAL, PARTIAL_NICE, DecodeJob, Decoder
from appliance.stt.engines import load_engine, partial_engine
import numpy as np

from voices import in_room, say

pytestmark = pytest.mark.timing


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


def _final_s(decoder: Decoder, pcm: bytes, partial_first: bool) -> tuple[float, list[str]]:
    """Seconds from submitting a final of `pcm` to its result; with `partial_first`, a partial of the
    same audio submitted 50 ms before it. Also the order the results came back."""
    order: list[str] = []
    at: dict[str, float] = {}
    done = threading.Event()
    want = 2 if partial_first else 1

    def finished(job, text, ms):
        assert text and "timer" in text.lower(), text
        at[job.kind] = time.monotonic()
        order.append(job.kind)
        if len(order) == want:
            done.set()

    if partial_first:
        decoder.submit(DecodeJob(("d", "p"), PARTIAL, pcm, len(pcm), "en", finished))
        time.sleep(0.05)
    t0 = time.monotonic()
    decoder.submit(DecodeJob(("d", "f"), FINAL, pcm, len(pcm), "en", finished))
    assert done.wait(60), order
    return at[FINAL] - t0, order


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_a_final_does_not_wait_for_a_running_partial(engine, pcm):
    shared = Decoder(engine)                     # control: one worker, the final waits its turn
    before = {t.id for t in psutil.Process().threads()}
    apart = Decoder(engine, partial_engine=partial_engine(SLOW, engine))
    try:
        deadline = time.monotonic() + 60
        while apart.partial_busy and time.monotonic() < deadline:   # the second copy loads on its thread
            time.sleep(0.05)
        assert not apart.partial_busy
        # the threads this decoder made: its final worker at normal priority (the control), and the
        # partial thread with the threads its engine made as it loaded, all at the partial priority
        made = {t.id for t in psutil.Process().threads()} - before
        partial_side = made - {apart._thread.native_id}
        assert _nice(apart._thread.native_id) == 0
        assert apart._partial_thread.native_id in partial_side and len(partial_side) >= 2, partial_side
        assert {tid: _nice(tid) for tid in partial_side} == {tid: PARTIAL_NICE for tid in partial_side}

        # the final's latency alone, beside a partial of the same audio running apart, and shared;
        # interleaved, after one warm-up of each engine, five rounds: the fastest of each, as other
        # work on the machine only ever adds to a round
        _final_s(apart, pcm, partial_first=True)
        alone, beside, behind, orders = [], [], [], set()
        for _ in range(5):
            alone.append(_final_s(apart, pcm, partial_first=False)[0])
            for decoder, into in ((apart, beside), (shared, behind)):
                s, order = _final_s(decoder, pcm, partial_first=True)
                into.append(s)
                orders.add((decoder is apart, tuple(order)))
        alone_s, beside_s, behind_s = min(alone), min(beside), min(behind)
        figures = f"alone {alone}, beside a partial {beside}, shared {behind}"
        assert beside_s < 1.4 * alone_s, figures      # near the final alone (measured 0.89-1.23x over 6 runs, load 2-7)
        assert behind_s > 1.6 * alone_s, figures      # waits for the partial (measured 1.90-2.65x, same runs)
        assert orders == {(True, (FINAL, PARTIAL)), (False, (PARTIAL, FINAL))}
    finally:
        apart.stop()
        shared.stop()


def test_no_partial_engine_where_it_is_not_needed(engine):
    assert partial_engine(SttSettings(partial_threads=0), engine) is None
    assert partial_engine(SttSettings(partial_interval_ms=0), engine) is None
    assert partial_engine(SttSettings(), engine) is not None
