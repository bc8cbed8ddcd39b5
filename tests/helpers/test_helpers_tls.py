"""A helper of a box with its TLS port on: `hearth helper join URL --run` keeps the box's CA
certificate, connects to the TLS port only, and answers jobs over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from appliance.helpers.join import credentials_path, load_credentials
from conftest import Hearth, free_port, make_settings
from helpers_kit import ROOT, toml, utter
from voices import in_room, quiet, say, to_wav

pytestmark = pytest.mark.own_hearth


@pytest.fixture(scope="module")
def tls_box(tmp_path_factory):
    h = Hearth(make_settings(tmp_path_factory.mktemp("tls-box"), broker={"tls_port": free_port()},
                             helpers={"take_jobs": False, "deadline_ms": 8000})).start()
    yield h
    h.stop()


def test_join_and_run_over_tls(tls_box, tmp_path):
    h = tls_box
    data = tmp_path / "helper"
    data.mkdir()
    (data / "hearth.toml").write_text(toml({"stt": {"threads": 1, "model": "tiny.en"}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HEARTH_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "helper", "join", h.web_url, "--run"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Confirm code "), line
        h.service.devices.confirm(line.split()[2])
        lines = []
        end = time.monotonic() + 45
        while time.monotonic() < end and not any(x.startswith("helper ready") for x in lines):
            lines.append(proc.stdout.readline().rstrip())
        assert any(x.startswith("helper ready") for x in lines), lines
        creds = load_credentials(data)
        saved = json.loads(credentials_path(data).read_text())
        assert creds.port == h.settings.broker.tls_port and creds.ca_file
        assert saved["ca_cert"] == (h.settings.data_dir / "tls" / "ca.pem").read_text()
        while time.monotonic() < end and not h.service.helpers.roster.serving("tiny.en"):
            time.sleep(0.05)
        clip = to_wav(in_room([quiet(0.2), say(h, "piper", "What time is it?"), quiet(0.3)], seed=4))
        heard = utter(h.device("over-tls"), clip)
        assert "time" in heard.final.text.lower()
        row = next(x for x in h.service.helpers.roster.list() if x["id"] == saved["id"])
        assert row["online"] and row["jobs"] >= 1          # the box took none: the helper answered, over TLS
    finally:
        proc.terminate()
        proc.wait(15)
