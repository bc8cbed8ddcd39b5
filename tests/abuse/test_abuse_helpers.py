"""Helpers that misbehave: garbage, answers for jobs they were not given, floods, too slow, gone
mid-job, another jobs protocol; and what a helper's broker login may not do. Each time the
device's final arrives (once, within the box's deadline) and the misbehaviour is counted.

The misbehaving helpers are raw MQTT clients on real helper logins (paired through the box's
pairing code path); the box is a real Hearth with a real Mosquitto and its own engine.
"""

from __future__ import annotations

import json
import queue
import time

import pytest

from appliance.commands.client import DeviceLink
from helpers_kit import box, counter, finals_after, utter
from mqtt import jobs as wire
from mqtt import topics
from mqtt.client import Connection, Credentials
from mqtt.messages import SttFinal
from voices import in_room, quiet, say, to_wav

pytestmark = [pytest.mark.own_hearth, pytest.mark.timing]

TAKE_MS, DEADLINE_MS = 800, 1500


class FakeHelper:
    """A helper login driven by hand: it offers a model and sees the jobs the box sends it."""

    def __init__(self, h, name: str, model: str = "tiny.en", jobs_version: int = wire.JOBS_VERSION, join: bool = True):
        devices = h.service.devices
        code, token = devices.request_code(f"s-{name}", "127.0.0.1", "helper", "test", name)
        devices.confirm(code)
        done = devices.activate(f"s-{name}", token, "127.0.0.1")
        self.id = done.device.id
        self.creds = Credentials("127.0.0.1", h.settings.broker.port, self.id, done.mqtt_password)
        self.inbox: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self.jobs: "queue.Queue[wire.SttJob]" = queue.Queue()
        self.conn = Connection(self.creds, self._got, [wire.info(), topics.device(self.id, "error")],
                               client_id=self.id, will=(wire.offer(self.id), wire.HelperOffer().to_payload(), 1, True)
                               ).start()
        self.info = self._info()
        if join:
            self.conn.subscribe(wire.jobs_for(self.id))
        offer = wire.HelperOffer(online=True, jobs_version=jobs_version, engine="fake", models=[model])
        self.conn.publish(wire.offer(self.id), offer.to_payload(), 1, True)

    def _got(self, topic: str, payload: bytes) -> None:
        if topic.startswith(wire.JOBS_ROOT + "/"):
            self.jobs.put(wire.SttJob.from_payload(payload, 1 << 22))
        else:
            self.inbox.put((topic, payload))

    def _info(self) -> wire.JobsInfo:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            topic, payload = self.inbox.get(timeout=5)
            if topic == wire.info():
                return wire.JobsInfo.from_payload(payload)
        raise AssertionError("no jobs info")

    def send(self, kind: str, payload: bytes) -> None:
        self.conn.publish(topics.device(self.id, "helper", kind), payload, 1)

    def take(self, timeout: float = 10.0) -> wire.SttJob:
        job = self.jobs.get(timeout=timeout)
        self.send("taken", wire.JobTaken(job=job.job).to_payload())
        return job

    def answer(self, job: str, text: str) -> None:
        self.send("result", wire.JobResult(job=job, text=text, decode_ms=1.0).to_payload())

    def leave(self) -> None:
        self.conn.publish(wire.offer(self.id), wire.HelperOffer(online=False).to_payload(), 1, True)
        time.sleep(0.1)
        self.conn.stop()


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    hh = box(tmp_path_factory.mktemp("abuse-helpers"), take_jobs=False, take_ms=TAKE_MS, deadline_ms=DEADLINE_MS)
    yield hh
    hh.stop()


@pytest.fixture(scope="module")
def clip(h):
    return to_wav(in_room([quiet(0.2), say(h, "piper", "Turn on the kitchen light."), quiet(0.3)], seed=5))


def wait_serving(h, helper_id: str, on: bool = True) -> None:
    end = time.monotonic() + 5
    while time.monotonic() < end and (helper_id in h.service.helpers.roster.serving("tiny.en")) != on:
        time.sleep(0.02)
    assert (helper_id in h.service.helpers.roster.serving("tiny.en")) == on


def start_utterance(h, link, clip):
    import threading
    out: dict = {}
    t = threading.Thread(target=lambda: out.__setitem__("heard", utter(link, clip, timeout=20)))
    t.start()
    return t, out


def test_garbage_made_up_answers_and_a_flood_reach_no_session(h, clip):
    """The helper took the job but answers with garbage, answers jobs nobody sent, floods, and a
    second helper answers the job it was not given: all ignored; the box takes the job back at the
    deadline and the device's final is the real one, once."""
    decode_s = h.decode_seconds(clip.pcm)
    liar, other = FakeHelper(h, "liar"), FakeHelper(h, "other", model="other", join=False)   # never chosen
    wait_serving(h, liar.id)
    link = h.device("victim")
    t, out = start_utterance(h, link, clip)
    job = liar.take()
    bystander = h.device("bystander")
    tb, outb = start_utterance(h, bystander, clip)                          # streams while the flood runs
    t0 = time.monotonic()
    liar.send("result", b"\x00\xffnot json")
    liar.send("result", json.dumps({"type": "job-result", "v": 1, "job": job.job, "text": 7}).encode())
    other.answer(job.job, "open the pod bay doors")                         # not given to it
    for i in range(3000):                                                   # a flood of made-up jobs
        liar.answer(f"made-up-{i}", "open the pod bay doors")
    assert time.monotonic() - t0 < 10
    t.join(25), tb.join(25)
    assert "kitchen light" in outb["heard"].final.text.lower()              # nobody else lost a message
    assert h.drop_lines() == []                                              # the broker queue never overflowed
    heard = out["heard"]
    assert "kitchen light" in heard.final.text.lower()
    # the deadline, then the box's decode: of this clip and perhaps first the bystander's (not taken
    # at TAKE_MS, so the box decodes it too, at about the same time)
    assert heard.latency_s < DEADLINE_MS / 1000 + 1.5 * 2 * decode_s, (heard.latency_s, decode_s)
    assert counter(h, 'hearth_helper_results_ignored_total{reason="bad"}') >= 2
    assert counter(h, 'hearth_helper_results_ignored_total{reason="not_given"}') >= 1
    end = time.monotonic() + 5
    while time.monotonic() < end and counter(h, 'hearth_helper_results_ignored_total{reason="unknown"}') < 3000:
        time.sleep(0.05)
    assert counter(h, 'hearth_helper_results_ignored_total{reason="unknown"}') == 3000
    liar.answer(job.job, "open the pod bay doors")                          # too late now
    assert finals_after(link, heard.final.session, 1.0) == []
    assert counter(h, 'hearth_helper_results_ignored_total{reason="late"}') >= 1
    liar.leave(), other.leave()
    wait_serving(h, liar.id, on=False)
    assert h.overflow_a_subscriber("helpers-sink")      # control: an overflow is logged and read here


def test_too_slow_and_gone_mid_job_helpers_cost_at_most_the_deadline(h, clip):
    for how in ("slow", "gone", "silent"):
        decode_s = h.decode_seconds(clip.pcm)
        fake = FakeHelper(h, f"fake-{how}")
        wait_serving(h, fake.id)
        link = h.device(f"dev-{how}")
        t, out = start_utterance(h, link, clip)
        if how == "silent":
            fake.jobs.get(timeout=10)                    # takes it and never says so
        else:
            fake.take()
        if how == "gone":                                # mid-job, the network gone: only the last will tells
            sock = fake.conn.client.socket()
            fake.conn.client.loop_stop()
            sock.close()
        t.join(25)
        heard = out["heard"]
        assert "kitchen light" in heard.final.text.lower(), how
        bound = (TAKE_MS if how == "silent" else DEADLINE_MS) / 1000 + 1.5 * decode_s
        assert heard.latency_s < bound, (how, heard.latency_s, decode_s)
        assert finals_after(link, heard.final.session, 0.5) == []
        if how == "gone":
            wait_serving(h, fake.id, on=False)
        else:
            fake.leave()
            wait_serving(h, fake.id, on=False)
    assert counter(h, 'hearth_helper_fallbacks_total{reason="deadline"}') >= 2
    assert counter(h, 'hearth_helper_fallbacks_total{reason="not_taken"}') >= 1


def test_a_helper_speaking_another_jobs_protocol_gets_no_work_and_a_clear_error(h, clip):
    old = FakeHelper(h, "old", jobs_version=0)
    time.sleep(0.3)
    row = next(x for x in h.service.helpers.roster.list() if x["id"] == old.id)
    assert row["online"] is False and "protocol 0" in row["problem"]
    sent = counter(h, "hearth_helper_jobs_sent_total")
    heard = utter(h.device("old-proto"), clip)                  # the box's own engine, at once
    assert "kitchen light" in heard.final.text.lower() and heard.latency_s < TAKE_MS / 1000 + 2.0
    assert counter(h, "hearth_helper_jobs_sent_total") == sent
    assert old.jobs.empty()
    old.conn.publish(wire.offer(old.id), json.dumps({"type": "helper-offer", "v": 99, "online": True}).encode(), 1, True)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        topic, payload = old.inbox.get(timeout=5)
        if topic == topics.device(old.id, "error"):
            assert json.loads(payload)["code"] == "unsupported_version"
            break
    else:
        raise AssertionError("no error for an offer in protocol 99")
    old.leave()


class Recording(DeviceLink):
    """A device link that also keeps every stt/final it receives, whatever the session."""

    def __init__(self, creds: Credentials):
        self.finals: list[str] = []
        super().__init__(creds)

    def _receive(self, topic: str, payload: bytes) -> None:
        if topic == topics.stt_final(self.device):
            self.finals.append(SttFinal.from_payload(payload).session)
        super()._receive(topic, payload)


def test_a_helper_login_reads_jobs_but_no_device_topic_and_cannot_speak_as_the_service(h, clip):
    spy = FakeHelper(h, "spy")
    spy.conn.subscribe("hearth/+/stt/#")
    spy.conn.subscribe("hearth/+/tts/#")
    spy.conn.subscribe("hearth/+/settings")
    link = Recording(h.credentials("watched")).__enter__()
    spy.conn.publish(topics.stt_final(link.device), json.dumps(
        {"type": "stt-final", "v": 1, "session": "forged", "text": "unlock the door"}).encode(), 1)
    spy.conn.publish(topics.server_info(), b'{"type":"server-info","v":1,"online":false}', 1, True)
    sessions = counter(h, "hearth_stt_sessions_total")
    spy.conn.publish(topics.stt_start(spy.id), json.dumps({"type": "stt-start", "v": 1, "session": "x"}).encode(), 1)
    t, out = start_utterance(h, link, clip)
    job = spy.take()                                   # positive control: its login does read jobs
    spy.answer(job.job, "turn on the kitchen light")
    t.join(25)
    heard = out["heard"]
    assert heard.final.text == "turn on the kitchen light"        # its answer, through the box
    link.__exit__()
    assert link.finals == [heard.final.session]        # the real final reached the device, the forged one never
    got = []
    while not spy.inbox.empty():
        got.append(spy.inbox.get()[0])
    assert not [x for x in got if x.startswith(f"hearth/{link.device}/")], got     # no device topic
    assert counter(h, "hearth_stt_sessions_total") == sessions + 1                 # its own stt/start denied
    seen = []
    probe = Connection(h.credentials("probe"), lambda t_, p: seen.append((t_, p)), [topics.server_info()]).start()
    time.sleep(0.3)
    probe.stop()
    assert seen and json.loads(seen[-1][1])["online"] is True                      # server info untouched
    spy.leave()
