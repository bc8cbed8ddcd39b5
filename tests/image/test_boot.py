"""The appliance boots, serves, speaks and survives a power cut (issue 8's acceptance).

One disk, two boots under QEMU (TCG + OVMF), ports forwarded to free loopback ports:
  first boot   /health answers; the first-boot banner is on the console; the broker refuses
               anonymous clients; [a device pairs: waits for the pairing API, issue 4]
  power cut    QEMU is killed -9; the broker's persistence file is zeroed, as a cut can leave it
  second boot  /health answers again; `hearth client say` gets audio over the forwarded broker
               port; the secrets made on first boot are unchanged; the bad file was moved aside.

Credentials: the broker login of the local command-line client (`hearth-cli`) is read from the
data partition after the power cut (debugfs, no mount), as someone holding the disk could. No
test-only account or back door is built into the image.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from vmtools import Disk, Machine, record

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

BOOT_TIMEOUT_S = 900
HEARTH = Path(sys.executable).parent / "hearth"


@pytest.fixture(scope="module")
def state() -> dict:
    return {}


@pytest.fixture(scope="module")
def first_boot(vm_disk: Disk, state: dict):
    machine = Machine(vm_disk.path, vm_disk.path.parent, "first").start()
    try:
        state["ready_first_s"] = machine.wait_ready(BOOT_TIMEOUT_S)
        record("boot_to_ready_first_s", round(state["ready_first_s"], 1))
        yield machine
    finally:
        machine.power_off()


def test_first_boot_serves_health(first_boot: Machine):
    status, body = first_boot.get("/health")
    health = json.loads(body)
    assert status == 200 and health["ok"] and health["broker"], health
    assert health["stt"] and health["tts"], health


def test_first_boot_banner_on_console(first_boot: Machine):
    deadline = time.monotonic() + 60
    while "==== Hearth ====" not in (text := first_boot.console_text()) and time.monotonic() < deadline:
        time.sleep(2)
    banner = text[text.find("==== Hearth ===="):]
    assert "==== Hearth ====" in text, f"no first-boot banner on the serial console:\n{text[-2000:]}"
    assert "data directory ready: /var/lib/hearth" in banner
    assert "http://hearth.local:8080/" in banner
    if "password" not in banner.lower():
        pytest.skip("`hearth setup` prints no admin password yet; the banner shows whatever it prints")
    assert re.search(r"password\S*\s*[:=]?\s*\S{8,}", banner, re.I), banner


def test_broker_refuses_anonymous(first_boot: Machine):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    result = {}
    client.on_connect = lambda c, u, flags, rc, props=None: result.setdefault("rc", rc)
    client.connect("127.0.0.1", first_boot.mqtt_port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + 20
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    assert "rc" in result, "the broker did not answer CONNECT"
    assert result["rc"].is_failure, f"an anonymous client was let in ({result['rc']})"


def test_device_pairs(first_boot: Machine, state: dict):
    # PAIRING (issue 4): when `GET /v1/device/code` and `hearth devices pair CODE` land on main,
    # pair a device here: get a code over HTTP, confirm it (on the box that is the web page with
    # the admin password from the console banner, or `hearth devices pair CODE` over SSH), poll
    # `POST /v1/device/activate`, and keep its uuid in state["device"] for the second boot.
    try:
        status, body = first_boot.get("/v1/device/code?state=image-test")
    except Exception as exc:  # urllib raises HTTPError for a 404
        pytest.skip(f"pairing API not in this build yet (GET /v1/device/code: {exc})")
    pytest.skip(f"pairing API answers ({status}) but this test does not drive it yet: {body[:200]!r}")


def test_power_cut_then_second_boot(first_boot: Machine, vm_disk: Disk, state: dict, tmp_path: Path):
    time.sleep(10)          # ext4 commits every 5 s: what first boot wrote is on disk by now
    first_boot.power_off()  # pull the plug
    vm_disk.recover()       # replay the ext4 journal (what the next boot would do first)

    accounts = json.loads(vm_disk.read("secrets/accounts.json"))
    assert "hearth-cli" in accounts, f"no hearth-cli login on the data partition: {list(accounts)}"
    login = accounts["hearth-cli"]
    assert vm_disk.exists(".first-boot-done")

    # What a power cut can leave behind: a zeroed Mosquitto persistence file.
    db = "broker/db/mosquitto.db"
    vm_disk.zero_file(db, 4096, tmp_path)

    with Machine(vm_disk.path, vm_disk.path.parent, "second") as second:
        ready = second.wait_ready(BOOT_TIMEOUT_S)
        record("boot_to_ready_second_s", round(ready, 1))

        out = tmp_path / "reply.wav"
        broker = f"mqtt://{login.get('username', 'hearth-cli')}:{login['password']}@127.0.0.1:{second.mqtt_port}"
        started = time.monotonic()
        proc = subprocess.run([str(HEARTH), "client", "say", "The kitchen light is on.", "--out", str(out),
                               "--broker", broker, "--timeout", "120"],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"hearth client say failed:\n{proc.stdout}\n{proc.stderr}"
        record("say_over_forwarded_port_s", round(time.monotonic() - started, 2))
        with wave.open(str(out)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
        assert seconds > 0.5, f"the reply is only {seconds:.2f} s of audio"
        time.sleep(10)
    vm_disk.recover()

    # Data intact: the same secrets; the zeroed file was moved aside, not fed to Mosquitto.
    assert json.loads(vm_disk.read("secrets/accounts.json")) == accounts
    listing = vm_disk._debugfs("ls -l /broker/db")
    assert "mosquitto.db.bad-" in listing, f"the zeroed mosquitto.db was not moved aside:\n{listing}"
    # PAIRING (issue 4): assert here that state["device"] is still listed (GET /v1/device/<uuid>
    # during the second boot, or the registry row in the SQLite file on the data partition).
