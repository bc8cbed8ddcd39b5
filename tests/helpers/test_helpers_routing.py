"""A job goes only to helpers that have the model it asks for: one helper offers tiny.en, another
a second copy of the same directory configured as "large". Pairing the real way
(`hearth helper join` against the box's web API), `hearth helpers` lists them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from appliance.helpers.join import credentials_path
from helpers_kit import ROOT, HelperProc, box, counter, model_copy, pair, stop_all, toml, utter
from voices import in_room, quiet, say, to_wav

pytestmark = pytest.mark.own_hearth


def joined(h, data, name: str, model_name: str = "", model_dir: str = "") -> HelperProc:
    """`hearth helper join URL`: the code it prints is confirmed on the box, as a person would."""
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEARTH_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "helper", "join", h.web_url, "--name", name],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert line.startswith("Confirm code "), line
    h.service.devices.confirm(line.split()[2])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Joined" in out and oct(credentials_path(data).stat().st_mode & 0o777) == "0o600"
    (data / "hearth.toml").write_text(toml({"stt": {"threads": 1, "model": model_dir or "tiny.en"},
                                            "helper": {"model_name": model_name}}))
    return HelperProc(data)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("routing")
    h = box(tmp, take_ms=3000, deadline_ms=8000)   # generous: this module is about routing, not deadlines
    tiny = HelperProc(pair(h, "Tiny", tmp / "tiny"))
    large = joined(h, tmp / "large", "Large", "large", model_copy(tmp, "large-model"))
    tiny.start(h)
    large.start(h, model="large")
    clip = to_wav(in_room([quiet(0.2), say(h, "piper", "Turn on the kitchen light."), quiet(0.3)], seed=3))
    yield h, tiny, large, clip
    stop_all(tiny, large)
    h.stop()


def jobs(h) -> dict:
    out = {x["id"]: x["jobs"] for x in h.service.helpers.roster.list()}
    out["box"] = counter(h, 'hearth_helper_jobs_total{helper="box"}')
    return out


def box_work(h) -> dict:
    """Each helper's job count, and the box's own: transcripts sent, decodes on its own engine."""
    return {**jobs(h), "transcripts": counter(h, "hearth_stt_transcripts_total"),
            "decodes": h.service.helpers.local.decodes}


def assert_box_decoded(h, before: dict, utterances: int) -> None:
    """One transcript per utterance, and the box's own engine decoded each (partials and a
    speculative decode may add to its count, never take from it)."""
    end = time.monotonic() + 5            # the counter moves just after the final is sent
    while (after := box_work(h))["transcripts"] - before["transcripts"] < utterances and time.monotonic() < end:
        time.sleep(0.05)
    assert after["transcripts"] - before["transcripts"] == utterances, (before, after)
    assert after["decodes"] - before["decodes"] >= utterances, (before, after)


def test_jobs_asking_for_large_reach_only_the_large_helper_and_the_rest_never_do(rig):
    h, tiny, large, clip = rig
    link = h.device("routing")
    dispatcher = h.service.helpers
    try:
        dispatcher.model_override = "large"
        before = jobs(h)
        for _ in range(3):
            assert "kitchen light" in utter(link, clip).final.text.lower()
        after = jobs(h)
        assert after[large.id] - before[large.id] >= 3
        assert after[tiny.id] == before[tiny.id] and after["box"] == before["box"]

        dispatcher.model_override = "tiny.en"                 # positive control: the other model's jobs
        before = jobs(h)
        for _ in range(4):
            assert "kitchen light" in utter(link, clip).final.text.lower()
        after = jobs(h)
        assert after[large.id] == before[large.id]
        assert after[tiny.id] - before[tiny.id] >= 1 and after[tiny.id] + after["box"] - before[tiny.id] - before["box"] >= 4
    finally:
        dispatcher.model_override = None


def test_hearth_helpers_lists_them_with_their_models_and_counts(rig):
    h, tiny, large, _ = rig
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEARTH_DATA": str(h.settings.data_dir)}
    out = subprocess.run([sys.executable, "-m", "appliance.commands.cli", "helpers"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert "large" in rows[large.id] and " yes " in rows[large.id]
    assert "tiny.en" in rows[tiny.id] and "Tiny" in rows[tiny.id]


def test_a_model_nobody_offers_any_more_is_decoded_by_the_box_at_once(rig):
    h, tiny, large, clip = rig
    large.stop()                                         # stops lending: its offer says offline
    end = time.monotonic() + 10
    while time.monotonic() < end and h.service.helpers.roster.serving("large"):
        time.sleep(0.05)
    dispatcher = h.service.helpers
    sent, before = counter(h, "hearth_helper_jobs_sent_total"), box_work(h)
    try:
        dispatcher.model_override = "large"
        heard = utter(h.device("nobody"), clip)
    finally:
        dispatcher.model_override = None
    assert "kitchen light" in heard.final.text.lower()
    assert counter(h, "hearth_helper_jobs_sent_total") == sent
    row = next(x for x in h.service.helpers.roster.list() if x["id"] == large.id)
    assert row["online"] is False and row["jobs"] == before[large.id]      # its job counter did not move
    assert_box_decoded(h, before, 1)


def test_overview_and_metrics_show_each_helper(rig):
    from web_support import admin_password, sign_in
    h, tiny, large, _ = rig
    http, _ = sign_in(h.web_url, admin_password(h))
    page = http.get(f"{h.web_url}/").text
    assert "Helpers" in page and "Tiny" in page and "Large" in page and tiny.id in page
    rows = {x["id"]: x for x in http.get(f"{h.web_url}/api/overview").json()["helpers"]}
    assert rows[large.id]["jobs"] >= 3 and rows[large.id]["mean_ms"] > 0
    metrics = http.get(f"{h.web_url}/metrics").text
    assert f'hearth_helper_jobs_total{{helper="{large.id}"}}' in metrics
    assert "hearth_helper_job_bytes_total" in metrics and "hearth_helpers_online" in metrics


def test_revoking_a_helper_drops_its_login_its_connection_and_its_offer(rig):
    h, tiny, large, clip = rig
    assert tiny.proc.poll() is None           # the control: it runs until the revoke
    h.service.devices.revoke(tiny.id)
    end = time.monotonic() + 15
    while time.monotonic() < end and not any("broker refused the connection" in ln for ln in tiny.lines):
        time.sleep(0.05)
    # dropped, it reconnects (0.2-5 s backoff) and the broker refuses the revoked login
    assert any("lost the broker" in ln for ln in tiny.lines), tiny.lines[-5:]
    assert any("broker refused the connection" in ln for ln in tiny.lines), tiny.lines[-5:]
    while time.monotonic() < end and tiny.id in [x["id"] for x in h.service.helpers.roster.list()]:
        time.sleep(0.05)
    assert tiny.id not in [x["id"] for x in h.service.helpers.roster.list()]
    link = h.device("after-revoke")
    sent, before = counter(h, "hearth_helper_jobs_sent_total"), box_work(h)
    for _ in range(2):
        assert "kitchen light" in utter(link, clip).final.text.lower()      # the box's own engine
    assert counter(h, "hearth_helper_jobs_sent_total") == sent            # nothing reaches it
    assert_box_decoded(h, before, 2)
    assert h.service.helpers.roster.serving("tiny.en") == []
    # it is told it was removed, once, and stops knocking (it used to retry every ~5 s forever)
    assert tiny.proc.wait(15) == 1, tiny.lines[-5:]
    assert sum("was removed from the box" in ln for ln in tiny.lines) >= 1, tiny.lines[-5:]
    assert sum("refused the connection" in ln for ln in tiny.lines) <= 2, tiny.lines[-8:]


def test_a_helper_with_a_more_accurate_model_gets_the_jobs(tmp_path):
    """The box runs tiny.en; a helper offering base (the real weights) is asked for base while it is
    online, with nothing set by hand; when it leaves, the box's own engine decodes (the control)."""
    h = box(tmp_path, take_ms=3000, deadline_ms=8000)
    helper = HelperProc(pair(h, "Base", tmp_path / "base", model_dir="base"))
    try:
        link = h.device("accurate")
        clip = to_wav(in_room([quiet(0.2), say(h, "piper", "Turn on the kitchen light."), quiet(0.3)], seed=5))
        assert h.service.helpers.asked_model() == "tiny.en"              # no helper yet
        helper.start(h, model="base")
        assert h.service.helpers.asked_model() == "base"
        before = jobs(h)
        assert "kitchen light" in utter(link, clip).final.text.lower()
        after = jobs(h)
        assert after[helper.id] > before[helper.id] and after["box"] == before["box"], (before, after)
        helper.stop()
        end = time.monotonic() + 15
        while time.monotonic() < end and h.service.helpers.roster.serving("base"):
            time.sleep(0.05)
        assert h.service.helpers.asked_model() == "tiny.en"
        decodes = h.service.helpers.local.decodes
        assert "kitchen light" in utter(link, clip).final.text.lower()
        assert h.service.helpers.local.decodes > decodes and jobs(h)[helper.id] == after[helper.id]
    finally:
        stop_all(helper)
        h.stop()
