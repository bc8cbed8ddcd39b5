"""A rogue helper races every job: it subscribes to everything its login might read, it is even
handed every job's id the moment the box makes one (as if the id leaked), and it answers `taken`
and a made-up result at once. Every final is still the device's own words, the rogue receives no
job and no audio, and the counters and the Overview name it.

The honest helper is a real `hearth helper run` with its own engine; the box is a real Hearth with a
real Mosquitto and takes no jobs itself, so every final decode goes through a helper.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from helpers_kit import HelperProc, box, counter, finals_after, pair, stop_all, utter
from mqtt import jobs as wire
from mqtt.client import Connection, Credentials
from voices import in_room, quiet, say, to_wav
from web_support import admin_password, sign_in

pytestmark = [pytest.mark.own_hearth, pytest.mark.timing]

LIE = "unlock the front door and disable the alarm"
ROUNDS = 5


class Rogue:
    """A paired helper login that subscribes to everything and answers every job id it learns."""

    def __init__(self, h, name: str):
        devices = h.service.devices
        code, token = devices.request_code(f"s-{name}", "127.0.0.1", "helper", "test", name)
        devices.confirm(code)
        done = devices.activate(f"s-{name}", token, "127.0.0.1")
        self.id = done.device.id
        self.got: list[tuple[str, int]] = []          # every message it received: topic, size
        self.raced: set[str] = set()
        creds = Credentials("127.0.0.1", h.settings.broker.port, self.id, done.mqtt_password)
        self.conn = Connection(creds, lambda t, p: self.got.append((t, len(p))),
                               ["#", "hearth/jobs/#", "$share/rogue/hearth/jobs/#"], client_id=self.id).start()
        # online, with a model nobody asks for here: the box has no job to give it
        offer = wire.HelperOffer(online=True, engine="fake", models=["rogue"])
        self.conn.publish(wire.offer(self.id), offer.to_payload(), 1, True)

    def race(self, job_id: str) -> None:
        self.raced.add(job_id)
        self.conn.publish(wire.taken(self.id), wire.JobTaken(job=job_id).to_payload(), 1)
        self.conn.publish(wire.result(self.id), wire.JobResult(job=job_id, text=LIE, decode_ms=1.0).to_payload(), 1)



@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taker")
    h = box(tmp, take_jobs=False, take_ms=3000, deadline_ms=8000)
    honest = HelperProc(pair(h, "Honest", tmp / "honest")).start(h)
    clip = to_wav(in_room([quiet(0.2), say(h, "piper", "Turn on the kitchen light."), quiet(0.3)], seed=7))
    yield h, honest, clip
    stop_all(honest)
    h.stop()


def leak_ids(h, rogue: Rogue, stop: threading.Event) -> None:
    """Hand the rogue each job id as soon as the box has it: the strongest race there is."""
    end = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < end:
        try:
            ids = list(h.service.helpers._pending)
        except RuntimeError:                          # changed while copied: take it again
            continue
        for job_id in ids:
            if job_id not in rogue.raced:
                rogue.race(job_id)
        time.sleep(0.002)


def test_a_rogue_helper_racing_every_job_is_never_believed_and_is_named(rig):
    h, honest, clip = rig
    link = h.device("victim")
    honest_jobs = lambda: next(x["jobs"] for x in h.service.helpers.roster.list() if x["id"] == honest.id)  # noqa: E731

    quiet_s = []                                      # control: the honest path, nobody racing
    for _ in range(3):
        heard = utter(link, clip)
        assert "kitchen light" in heard.final.text.lower()
        quiet_s.append(heard.latency_s)

    rogue = Rogue(h, "rogue")
    done_before, ignored_before = honest_jobs(), counter(h, 'hearth_helper_results_ignored_total{reason="not_given"}')
    stop = threading.Event()
    racer = threading.Thread(target=leak_ids, args=(h, rogue, stop), daemon=True)
    racer.start()
    attacked_s, finals = [], []
    try:
        for _ in range(ROUNDS):
            heard = utter(link, clip)
            finals.append(heard.final.text)
            attacked_s.append(heard.latency_s)
            assert finals_after(link, heard.final.session, 0.3) == []          # one final, never a second
    finally:
        stop.set()
        racer.join(5)
    time.sleep(0.5)                                   # the rogue's last answers reach the box

    assert all("kitchen light" in f.lower() and "unlock" not in f.lower() for f in finals), finals
    assert honest_jobs() - done_before >= ROUNDS      # positive control: the jobs went to the honest helper
    assert len(rogue.raced) >= ROUNDS                 # ... and the rogue did race every one of them
    not_given = counter(h, f'hearth_helper_not_given_total{{helper="{rogue.id}"}}')
    assert not_given >= 2 * ROUNDS, not_given          # its taken and its result, for each job: named
    assert counter(h, 'hearth_helper_results_ignored_total{reason="not_given"}') - ignored_before >= 2 * ROUNDS
    assert counter(h, f'hearth_helper_not_given_total{{helper="{honest.id}"}}') == 0

    topics_got = {t for t, _ in rogue.got}
    assert wire.info() in topics_got                  # positive control: its `#` does deliver what it may read
    job_bytes = sum(n for t, n in rogue.got if t.startswith("hearth/jobs/") and t != wire.info())
    assert job_bytes == 0, sorted(topics_got)         # not one job, not one byte of audio
    assert not [t for t in topics_got if t.startswith(f"hearth/{link.device}/")]

    rows = {x["id"]: x for x in h.service.helpers.roster.list()}
    assert rows[rogue.id]["flagged"] and rows[rogue.id]["not_given"] >= 2 * ROUNDS
    assert not rows[honest.id]["flagged"]
    print(f"honest path: quiet {statistics.median(quiet_s) * 1000:.0f} ms, "
          f"rogue racing {statistics.median(attacked_s) * 1000:.0f} ms (median end of speech -> final)")
    # A believed `taken` would hold each job for take_ms (3 s) before the box gave it to another
    # helper: that is the slowdown to rule out. The honest path takes milliseconds here, so "twice
    # the quiet median" alone failed on scheduler noise (23.7 ms against 2 x 7.2 ms, with nothing
    # believed; single round trips measured 5-88 ms quiet and 4-65 ms racing in that run, 2 ms
    # medians on a quiet machine); half a second of slack is far above that spread and far below
    # the 3 s of the attack.
    quiet_med, attacked_med = statistics.median(quiet_s), statistics.median(attacked_s)
    assert attacked_med <= max(2 * quiet_med, quiet_med + 0.5), (quiet_s, attacked_s)

    # the Overview flags it, and one click revokes it: its login and connection go
    http, csrf = sign_in(h.web_url, admin_password(h))
    page = http.get(f"{h.web_url}/").text
    assert "for jobs sent to others" in page and f'action="/api/devices/{rogue.id}/revoke"' in page
    assert f'action="/api/devices/{honest.id}/revoke"' not in page
    assert http.post(f"{h.web_url}/api/devices/{rogue.id}/revoke", data={"csrf": csrf}).status_code < 400
    end = time.monotonic() + 10
    while time.monotonic() < end and rogue.conn.connected.is_set():
        time.sleep(0.05)
    assert not rogue.conn.connected.is_set()
    while time.monotonic() < end and rogue.id in [x["id"] for x in h.service.helpers.roster.list()]:
        time.sleep(0.05)
    assert rogue.id not in [x["id"] for x in h.service.helpers.roster.list()]
    assert "kitchen light" in utter(link, clip).final.text.lower()          # the honest path goes on
    rogue.conn.stop()


def test_a_helper_login_cannot_open_a_wake_word_stream(rig):
    """A helper is not a voice device: its `wake/start` never reaches the service (the ACL denies its
    own wake/#), so it opens no stream and gets no `feedback`. Control: a device's does open one."""
    from mqtt import topics
    from mqtt import wake as w
    h, _, _ = rig
    streams = h.service.satellites.worker.streams
    start = w.WakeStart(stream="probe").to_payload()
    spy = Rogue(h, "wake-spy")
    spy.conn.publish(topics.device(spy.id, "wake", "start"), start, 1)
    link = h.device("wake-control")
    link.publish(topics.device(link.device, "wake", "start"), start)
    end = time.monotonic() + 5
    while time.monotonic() < end and link.device not in streams:
        time.sleep(0.05)
    assert link.device in streams                                 # positive control: a device's start works
    time.sleep(0.5)
    assert spy.id not in streams
    assert not [t for t, _ in spy.got if t.endswith("/feedback")]
    link.publish(topics.device(link.device, "wake", "end"), w.WakeEnd(stream="probe").to_payload())
    spy.conn.stop()
