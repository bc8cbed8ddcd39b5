"""Recovery mode: a damaged registry with no good snapshot still brings the web page up; /health names
the file; a person signs in, restores the backup they downloaded, and the paired device is back."""

from __future__ import annotations

import pytest

import os
import threading

import paho.mqtt.client as paho
import requests

from appliance.commands.client import DeviceLink, say
from appliance.state.snapshots import quick_check
from faults_kit import HearthRun, pair, sign_in

pytestmark = pytest.mark.own_hearth


def login(creds, wait_s: float = 10.0) -> str:
    """What the broker says to this login, after its CONNACK: "accepted", "refused" (a bad login),
    "absent" (nothing listens: no broker runs in recovery mode) or "no answer"."""
    said = threading.Event()
    outcome = {}

    def connected(client, userdata, flags, reason_code, properties):
        outcome["code"] = reason_code
        said.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"probe-{os.getpid()}")
    client.username_pw_set(creds.username, creds.password)
    client.on_connect = connected
    try:
        client.connect("127.0.0.1", creds.port, keepalive=5)
    except OSError:
        return "absent"
    client.loop_start()
    try:
        if not said.wait(wait_s):
            return "no answer"
        return "refused" if outcome["code"].is_failure else "accepted"
    finally:
        client.disconnect()
        client.loop_stop()


def test_recovery_mode_restores_a_backup_from_the_page(tmp_path):
    run = HearthRun(tmp_path / "var").start()
    try:
        http = sign_in(run.base, run.admin_password)
        creds = pair(run, http, "Hall")
        backup = http.get(f"{run.base}/api/system/backup", timeout=30)
        assert backup.status_code == 200 and backup.content[:2] == b"\x1f\x8b"
        run.wait_snapshot(devices=1)
    finally:
        assert run.stop() == 0, run.output()

    db = run.data / "hearth.db"
    garbage = os.urandom(100)
    db.write_bytes(garbage + db.read_bytes()[100:])                  # garbage header
    for snap in (run.data / "snapshots").glob("[0-9]*/hearth.db"):   # and every snapshot damaged too
        snap.write_bytes(b"\0" * 100 + snap.read_bytes()[100:])
    assert quick_check(db) is not None

    run.start()
    try:
        out = run.output()
        assert f"RECOVERY MODE: the registry database {db} is damaged" in out, out
        health = run.health()
        assert health["ok"] is False and health["mode"] == "recovery" and health["file"] == str(db)
        assert "restore a backup" in health["reason"] and str(db) in health["reason"]
        assert "hearth_recovery_mode 1" in run.metrics()
        code = requests.get(f"{run.base}/v1/device/code", params={"state": "x"}, timeout=10)
        assert code.status_code == 503 and code.json()["error"] == "recovery"
        assert login(creds) in ("refused", "absent")    # devices cannot log in: the registry holds their logins
        assert requests.get(f"{run.base}/api/recovery", timeout=10).status_code == 401     # sign-in still guards it

        http = sign_in(run.base, run.admin_password)
        page = http.get(f"{run.base}/", timeout=10).text
        assert str(db) in page and "Restore a backup" in page and "empty registry" in page
        bad = http.post(f"{run.base}/api/system/restore", files={"backup": ("x.tar.gz", b"not a backup")}, timeout=30)
        assert bad.status_code == 422 and db.read_bytes()[:16] != b"SQLite format 3\0"     # nothing changed
        done = http.post(f"{run.base}/api/system/restore", files={"backup": ("b.tar.gz", backup.content)}, timeout=30)
        assert done.status_code == 200 and done.json()["restarting"], done.text

        run.wait_running(times=2)                       # the same process re-executed itself
        assert run.health()["ok"] is True, run.health()
        assert login(creds) == "accepted"               # control: the same probe, the login works again
        with DeviceLink(creds) as link:
            assert len(say(link, "The hall is back.", timeout=30).pcm) > 10000
        moved = list((run.data / "damaged").glob("hearth.db.*[0-9Z]"))
        assert len(moved) == 1 and moved[0].read_bytes()[:100] == garbage      # kept, not deleted
    finally:
        assert run.stop() == 0, run.output()
    assert quick_check(db) is None


def test_recovery_mode_reset_starts_an_empty_registry(tmp_path):
    run = HearthRun(tmp_path / "var")
    db = run.data / "hearth.db"
    db.write_bytes(b"\xff" * 8192)                              # not a database, and no snapshot at all
    run.start()
    try:
        assert "Hearth is running in recovery mode" in run.output()
        assert run.admin_password, "a first start in recovery mode still shows the new admin password"
        http = sign_in(run.base, run.admin_password)
        refused = http.post(f"{run.base}/api/recovery/reset", json={"confirm": "yes"}, timeout=10)
        assert refused.status_code == 422 and db.read_bytes() == b"\xff" * 8192      # nothing changed
        done = http.post(f"{run.base}/api/recovery/reset", json={"confirm": "reset"}, timeout=10)
        assert done.status_code == 200 and done.json()["restarting"], done.text
        run.wait_running(times=2)
        assert run.health()["ok"] is True
        http = sign_in(run.base, run.admin_password)
        with DeviceLink(pair(run, http, "Porch")) as link:      # pairing works again from scratch
            assert len(say(link, "New start.", timeout=30).pcm) > 10000
    finally:
        assert run.stop() == 0, run.output()
    moved = list((run.data / "damaged").glob("hearth.db.*[0-9Z]"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"\xff" * 8192
