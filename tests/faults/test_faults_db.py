"""A damaged registry at start: `hearth run` restores the newest good snapshot, and a paired device
still connects with its own broker login and gets a spoken reply.

One Hearth (a `hearth run` subprocess) pairs a device over HTTP, waits for the snapshot that holds
it and stops; each test then damages hearth.db the way a power cut or a failing SD card does and
starts Hearth again on the same data directory.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from appliance.client import DeviceLink, say
from appliance.snapshots import quick_check
from faults_kit import HearthRun, pair, sign_in

PAGE = 4096


def zero_length(db):
    db.write_bytes(b"")


def truncated(db):
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 + 100])


def garbage_header(db):
    data = db.read_bytes()
    db.write_bytes(os.urandom(100) + data[100:])


def page_corrupted(db):
    data = bytearray(db.read_bytes())
    for page in range(1, min(len(data) // PAGE, 12)):      # every page after the schema page, header kept
        start = page * PAGE
        data[start + 8: start + PAGE] = os.urandom(PAGE - 8)
    db.write_bytes(bytes(data))


DAMAGE = {"zero-length": zero_length, "truncated": truncated, "garbage-header": garbage_header,
          "page-corrupted": page_corrupted}


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    run = HearthRun(tmp_path_factory.mktemp("faults-db") / "var").start()
    try:
        http = sign_in(run.base, run.admin_password)
        creds = pair(run, http, "Kitchen")
        with DeviceLink(creds) as link:
            assert say(link, "The kitchen is paired.", timeout=30).pcm
        run.wait_snapshot(devices=1)
    finally:
        assert run.stop() == 0, run.output()
    assert not (run.data / "hearth.db-wal").exists(), "a clean stop leaves no WAL behind"
    yield run, creds


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_registry_is_restored_from_the_newest_snapshot(household, damage):
    run, creds = household
    db = run.data / "hearth.db"
    DAMAGE[damage](db)
    assert damage == "zero-length" or quick_check(db) is not None, "the damage is real"
    restored_before = len(list((run.data / "damaged").glob("hearth.db.*[0-9Z]"))) \
        if (run.data / "damaged").exists() else 0
    run.start()
    try:
        out = run.output()
        assert "registry restored:" in out and "snapshot" in out, out
        assert quick_check(db) is None

        # the paired device connects with ITS OWN login and gets a spoken reply
        with DeviceLink(creds) as link:
            spoken = say(link, "Welcome back to the kitchen.", timeout=30)
        assert len(spoken.pcm) > spoken.rate       # over half a second of speech

        health = run.health()
        assert health["ok"] is True and health["registry"]["repairs"] >= 1, health
        assert "hearth_db_restored_total 1" in run.metrics()
        http = sign_in(run.base, run.admin_password)
        repairs = http.get(f"{run.base}/api/overview", timeout=10).json()["storage"]["registry"]["repairs"]
        assert repairs and str(db) in repairs[-1]["text"]
        assert "Registry restored from a snapshot" in http.get(f"{run.base}/", timeout=10).text

        # the damaged file was moved aside, never deleted
        moved = sorted((run.data / "damaged").glob("hearth.db.*[0-9Z]"))
        assert len(moved) == restored_before + 1
        why = moved[-1].with_name(moved[-1].name + ".why").read_text()
        assert ("zero-length" in why or "no devices" in why) if damage == "zero-length" else why.strip()
    finally:
        assert run.stop() == 0, run.output()
    rows = sqlite3.connect(db).execute("select count(*) from devices_devices where revoked_at is null").fetchone()
    assert rows == (1,)
    assert json.loads((run.data / "damaged" / "repairs.json").read_text())[-1]["problem"]
