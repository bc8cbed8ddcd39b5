"""`hearth update confirm`: the image's boot-check unit runs it before boot-complete.target. It
marks the booted slot good only once Hearth is healthy (service, broker, engines, web page), and
exits 1 with the reason when Hearth does not get there in time (the bootloader then falls back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.state import config
from conftest import Hearth, make_settings
from update_support import RaucBox, make_bundle

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    rauc = RaucBox(tmp_path_factory.mktemp("rauc-confirm")).start()
    yield rauc
    rauc.stop()


def hearth_cli(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.commands.cli", "--data", str(data), "update", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT)


def test_confirm_marks_the_new_slot_good_only_when_hearth_is_healthy(box, tmp_path):
    data = tmp_path / "data"
    settings = make_settings(data, update=box.settings())
    data.mkdir(parents=True)
    (data / "hearth.toml").write_text(config.to_toml(settings))     # the command reads the same settings
    bundle = make_bundle(tmp_path / "hearth-2.0.0.raucb", "2.0.0", box.cert, box.key)
    assert hearth_cli(data, "install", str(bundle)).returncode == 0
    box.reboot("B", data)                        # the bootloader tries the new slot
    state_b = box.root / "boot" / "state-B"

    # Hearth is not running: no health, no mark-good, exit 1 with the reason
    t0 = time.monotonic()
    done = hearth_cli(data, "confirm", "--timeout", "3")
    assert done.returncode == 1 and "did not become healthy within 3 s" in done.stderr, done.stderr
    assert "control channel" in done.stderr and time.monotonic() - t0 < 30
    assert state_b.read_text().strip() == "bad"
    assert json.loads(hearth_cli(data, "status", "--json").stdout)["last"]["result"] == "booted"

    # Hearth comes up: confirm waits for it, then RAUC marks slot B good through the bootloader
    hearth = Hearth(settings)
    confirm = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "--data", str(data), "update", "confirm",
                                "--timeout", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        time.sleep(1.0)
        assert confirm.poll() is None                # still waiting: nothing is healthy yet
        assert state_b.read_text().strip() == "bad"
        hearth.start()
        out, err = confirm.communicate(timeout=120)
        assert confirm.returncode == 0, err
        assert "healthy after" in out and "marked slot rootfs.1 as good" in out
        assert state_b.read_text().strip() == "good"
        doc = json.loads(hearth_cli(data, "status", "--json").stdout)
        assert doc["booted"] == "B" and doc["last"]["result"] == "good"
        assert doc["last"]["message"] == "2.0.0 in slot B is healthy and marked good"
        assert {s["bootname"]: s["boot_status"] for s in doc["slots"]}["B"] == "good"

        # the next update, from a USB stick while the service runs: the command asks the service
        # (control channel), which writes the slot not running now: A
        running_b = box.slots["B"].read_bytes()
        v3 = make_bundle(tmp_path / "hearth-3.0.0.raucb", "3.0.0", box.cert, box.key)
        done = hearth_cli(data, "install", str(v3))
        assert done.returncode == 0, done.stderr
        assert "3.0.0 written to slot A (rootfs.0)" in done.stdout
        assert box.slots["B"].read_bytes() == running_b
        doc = json.loads(hearth_cli(data, "status", "--json").stdout)
        assert doc["last"]["source"] == "usb" and doc["last"]["from"] == "B"
        assert {s["bootname"]: s["version"] for s in doc["slots"]} == {"A": "3.0.0", "B": "2.0.0"}
        assert hearth.service.updates.installer.progress.state == "installed"    # the service did it
    finally:
        if confirm.poll() is None:
            confirm.kill()
        hearth.stop()
