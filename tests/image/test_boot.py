"""The appliance boots, serves, speaks and survives a power cut (issue 8's acceptance).

One disk, two boots under QEMU (TCG + OVMF), ports forwarded to free loopback ports:
  first boot   /health answers; the first-boot banner is on the console; the broker refuses
               anonymous clients; a device pairs (code over HTTP, confirmed on the web page with
               the admin password read from the console, activated: its broker login)
  power cut    QEMU is killed -9; the broker's persistence file is zeroed, as a cut can leave it
  second boot  /health answers again; the paired device is still listed; `hearth client say`
               with the device's login gets audio over the forwarded broker port; the secrets
               made on first boot are unchanged; the zeroed file was moved aside.

Credentials come only from what a person has: the console (admin password) and the pairing
reply (device login). The data partition is read after the power cut (debugfs, no mount) only to
check that the secrets survived. No test-only account or back door is built into the image.
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

from vmtools import Disk, Machine, record, vm_disk, x86_image  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

BOOT_TIMEOUT_S = 600
HEARTH = Path(sys.executable).parent / "hearth"


@pytest.fixture(scope="module")
def state() -> dict:
    return {}


@pytest.fixture(scope="module")
def first_boot(vm_disk: Disk, state: dict):
    machine = Machine(vm_disk.path, vm_disk.path.parent, "first").start()
    try:
        try:
            state["ready_first_s"] = machine.wait_ready(BOOT_TIMEOUT_S)
        except AssertionError as exc:
            machine.power_off()
            raise AssertionError(f"{exc}\n--- the box's journal (hearth units):\n"
                                 f"{vm_disk.journal(vm_disk.path.parent)}") from None
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


def admin_password(console: str) -> str | None:
    match = re.search(r"web admin password .*: (\S+)\s*$", console, re.M)
    return match.group(1) if match else None


def sign_in(base: str, password: str):
    """A signed-in web session with its CSRF header, as the browser gets one."""
    import requests

    http = requests.Session()
    form = http.get(f"{base}/login", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    reply = http.post(f"{base}/login", data={"csrf": token, "password": password}, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, f"the console's admin password does not sign in: {reply.status_code} {reply.text[:300]}"
    page = http.get(f"{base}/", timeout=30)
    http.headers["X-CSRF-Token"] = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    return http


def test_device_pairs(first_boot: Machine, state: dict):
    """A device asks for a code over HTTP, the owner confirms it on the web page (signed in with
    the password from the console), the device activates and gets its broker login."""
    import requests

    base = f"http://127.0.0.1:{first_boot.web_port}"
    code = requests.get(f"{base}/v1/device/code", params={"state": "image-test", "name": "Image test speaker"}, timeout=30)
    assert code.status_code == 200 and len(code.json()["code"]) == 6, code.text
    password = admin_password(first_boot.console_text())
    assert password, "the console shows no admin password, so nobody could confirm a code"
    state["admin_password"] = password
    http = sign_in(base, password)
    ok = http.post(f"{base}/api/devices/confirm", json={"code": code.json()["code"], "room": "Hall"}, timeout=30)
    assert ok.status_code == 200, ok.text
    activated = requests.post(f"{base}/v1/device/activate", json={"state": "image-test", "token": code.json()["token"]}, timeout=30)
    assert activated.status_code == 200, activated.text
    state["device"] = {"id": ok.json()["device"]["id"], "mqtt": activated.json()["mqtt"]}


def test_power_cut_then_second_boot(first_boot: Machine, vm_disk: Disk, state: dict, tmp_path: Path):
    time.sleep(10)          # ext4 commits every 5 s: what first boot wrote is on disk by now
    first_boot.power_off()  # pull the plug
    vm_disk.recover()       # replay the ext4 journal (what the next boot would do first)

    accounts = json.loads(vm_disk.read("secrets/accounts.json"))
    assert "hearth-cli" in accounts, f"no hearth-cli login on the data partition: {list(accounts)}"
    assert vm_disk.exists(".first-boot-done")

    # What a power cut can leave behind: a zeroed Mosquitto persistence file.
    db = "broker/db/mosquitto.db"
    vm_disk.zero_file(db, 4096, tmp_path)

    with Machine(vm_disk.path, vm_disk.path.parent, "second") as second:
        ready = second.wait_ready(BOOT_TIMEOUT_S)
        record("boot_to_ready_second_s", round(ready, 1))

        assert "device" in state, "no device was paired on the first boot (test_device_pairs)"
        device = state["device"]    # the paired device is still known, and its broker login still works
        http = sign_in(f"http://127.0.0.1:{second.web_port}", state["admin_password"])
        listed = http.get(f"http://127.0.0.1:{second.web_port}/api/devices", timeout=30).json()
        assert device["id"] in json.dumps(listed), f"the paired device is gone after the power cut: {listed}"
        user, password = device["mqtt"]["username"], device["mqtt"]["password"]

        out = tmp_path / "reply.wav"
        broker = f"mqtt://{user}:{password}@127.0.0.1:{second.mqtt_port}"
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
