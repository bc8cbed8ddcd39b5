"""The fair-share parts on their own: lanes served in turn, turns at the TTS engine, the audio
guard's burst and rate, and chores coalesced per key (appliance/voice/shares.py, appliance/process/chores.py)."""

from __future__ import annotations

import pytest

import threading
import time

from appliance.process.chores import Chores
from appliance.voice.shares import DROP, PASS, REFUSE, AudioGuard, FairInbox, Lanes, Turns

pytestmark = [pytest.mark.own_hearth, pytest.mark.timing]

SECOND = 32000          # bytes of 16 kHz mono s16


def test_lanes_serve_clients_in_turn_and_keep_each_clients_order():
    lanes: Lanes[str] = Lanes()
    for i in range(50):
        lanes.push("flooder", f"f{i}")
    lanes.push("b", "b0")
    lanes.push("b", "b1")
    got = [lanes.pop() for _ in range(6)]
    assert got == ["f0", "b0", "f1", "b1", "f2", "f3"]        # B waits for one of A's, not fifty
    assert lanes.remove(lambda item: item.startswith("f")) == 46 and len(lanes) == 0


def test_a_full_lane_drops_only_that_clients_messages():
    inbox = FairInbox(per_client=3)
    assert all(inbox.put("a", i) for i in range(3))
    assert not inbox.put("a", 3) and inbox.dropped == 1
    assert inbox.put("b", "start")                              # another client still gets in
    inbox.put_urgent("decoded")
    assert [inbox.get(0.1) for _ in range(5)] == ["decoded", 0, "start", 1, 2]
    assert inbox.get(0.01) is None


def test_guard_passes_a_burst_and_real_time_then_refuses_once_and_drops():
    guard = AudioGuard(factor=1.5, burst_s=2.0, cooldown_s=0.5)
    key = ("dev", "s1")
    assert guard.open(key, "dev", SECOND) and not guard.open(key, "dev", SECOND)   # a repeated start changes nothing
    assert guard.allow(key, int(1.9 * SECOND)) == PASS          # a pre-roll sent at once
    time.sleep(0.2)
    assert guard.allow(key, int(0.25 * SECOND)) == PASS         # real time after it
    assert guard.allow(key, int(1.0 * SECOND)) == REFUSE        # then 1 s of audio at once: over
    assert guard.allow(key, 640) == DROP                        # the rest of the flood stops here
    assert guard.cooling("dev") > 0 and guard.cooling("other") == 0
    time.sleep(0.55)
    assert guard.cooling("dev") == 0


def test_guard_judges_when_frames_arrived_not_when_a_queue_let_them_go():
    """Six seconds of a real-time device's 40 ms frames, stamped as they arrived, reach the guard all
    at once (they waited behind Hearth's wake thread): never too fast. The same bytes stamped as a
    10x device sent them are refused: the guard still sees a flood on the wire."""
    frame = SECOND * 40 // 1000
    for speed, verdict in ((1.0, PASS), (10.0, REFUSE)):
        guard = AudioGuard(factor=1.5, burst_s=2.0)
        key = ("dev", f"x{speed:g}")
        began = time.monotonic() - 6.0 / speed          # the device began sending this long ago
        guard.open(key, "dev", SECOND, at=began)
        verdicts = [guard.allow(key, frame, began + (i + 1) * 0.04 / speed) for i in range(150)]
        assert (REFUSE in verdicts) == (verdict == REFUSE), (speed, verdicts.count(PASS))
        if verdict == PASS:
            assert verdicts.count(PASS) == 150
    # the control: without the stamps (judged when handed over), the queued real-time audio is refused
    guard = AudioGuard(factor=1.5, burst_s=2.0)
    guard.open(("dev", "late"), "dev", SECOND)
    assert REFUSE in [guard.allow(("dev", "late"), frame) for _ in range(150)]


def test_guard_drops_most_audio_for_sessions_nobody_opened():
    guard = AudioGuard(factor=1.5, burst_s=2.0)
    verdicts = [guard.allow(("dev", f"ghost{i}"), 640) for i in range(200)]
    assert verdicts.count(PASS) <= 60 and verdicts.count(DROP) >= 140


def test_uploads_may_overdraw_once_then_wait_for_real_time():
    from appliance.voice.shares import TooFast
    guard = AudioGuard(factor=1.5, burst_s=2.0)
    guard.charge("mycroft-a", 25.0)               # the longest utterance is always accepted ...
    try:
        guard.charge("mycroft-a", 3.0)            # ... and paid back at 1.5x real time before the next
        raise AssertionError("a second upload right away was accepted")
    except TooFast as exc:
        assert "try again in" in str(exc)
    guard.charge("mycroft-b", 3.0)                # another device is not affected


def test_turns_at_the_engine_go_round_the_clients():
    turns, order, started = Turns(), [], threading.Event()
    release = threading.Event()

    def hold():
        with turns.turn("holder"):
            started.set()
            release.wait(5)

    def take(client, name):
        with turns.turn(client):
            order.append(name)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    waiting = []
    for client, name in [("wyoming:10.0.0.9", "w1"), ("wyoming:10.0.0.9", "w2"), ("wyoming:10.0.0.9", "w3"), ("b", "b1")]:
        t = threading.Thread(target=take, args=(client, name))
        t.start()
        waiting.append(t)
        time.sleep(0.05)                          # queued in this order
    release.set()
    for t in [holder, *waiting]:
        t.join(5)
    assert order == ["w1", "b1", "w2", "w3"]      # B's one sentence waits behind one of the address's, not three


def test_chores_keep_only_the_newest_per_key_and_report_errors():
    from mqtt.messages import ProtocolError
    reported, ran = [], []
    chores = Chores(lambda device, exc: reported.append((device, exc.code)))
    gate = threading.Event()
    chores.run(lambda: gate.wait(5))              # hold the worker while the flood queues up
    for i in range(200):
        chores.latest(("status", "a"), lambda i=i: ran.append(i), device="a")
    chores.run(lambda: (_ for _ in ()).throw(ProtocolError("bad_message", "no")), device="b")
    gate.set()
    chores.stop()
    assert ran == [199]                           # 200 status messages, one registry write
    assert reported == [("b", "bad_message")]


def test_a_chore_with_every_runs_at_once_then_at_most_that_often():
    ran = []
    chores = Chores(lambda device, exc: None)
    t0 = time.monotonic()
    chores.latest("presence", lambda: ran.append(time.monotonic() - t0), every=0.3)
    time.sleep(0.1)
    for _ in range(50):
        chores.latest("presence", lambda: ran.append(time.monotonic() - t0), every=0.3)
    time.sleep(0.5)
    chores.stop()
    assert len(ran) == 2 and ran[0] < 0.1 and 0.28 <= ran[1] - ran[0] < 0.45, ran
