"""A damaged registry at start: `hearth run` restores the newest good snapshot, and a paired device
still connects with its own broker login and gets a spoken reply.

One Hearth (a `hearth run` subprocess) pairs a device over HTTP, waits for the snapshot that holds
it and stops; each test then damages hearth.db the way a power cut or a failing SD card does and
starts Hearth again on the same data directory.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3

import pytest

from appliance.commands.client import DeviceLink, say
from appliance.state.snapshots import quick_check
from faults_kit import HearthRun, pair, sign_in

pytestmark = pytest.mark.own_hearth

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
def restored(tmp_path_factory):
    """One household pairs a device and stops; four copies of its data directory are each damaged
    one way and started at once (each on its own ports). Yields {damage: (HearthRun, credentials)}."""
    root = tmp_path_factory.mktemp("faults-db")
    home = HearthRun(root / "home").start()
    try:
        http = sign_in(home.base, home.admin_password)
        creds = pair(home, http, "Kitchen")
        with DeviceLink(creds) as link:
            assert say(link, "The kitchen is paired.", timeout=30).pcm
        home.wait_snapshot(devices=1)
    finally:
        assert home.stop() == 0, home.output()
    assert not (home.data / "hearth.db-wal").exists(), "a clean stop leaves no WAL behind"
    runs = {}
    for damage, hurt in DAMAGE.items():
        data = root / damage
        shutil.copytree(home.data, data, ignore=shutil.ignore_patterns("hearth.toml"))
        hurt(data / "hearth.db")
        assert damage == "zero-length" or quick_check(data / "hearth.db") is not None, "the damage is real"
        run = HearthRun(data)
        run.admin_password = home.admin_password
        runs[damage] = (run.launch(), dataclasses.replace(creds, port=run.broker_port))
    try:
        for run, _ in runs.values():
            run.wait_running(timeout=90)
        yield runs
    finally:
        for run, _ in runs.values():
            assert run.stop() == 0, run.output()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_registry_is_restored_from_the_newest_snapshot(restored, damage):
    run, creds = restored[damage]
    db = run.data / "hearth.db"
    out = run.output()
    assert f"registry restored: {db} was damaged" in out and "from snapshot" in out, out
    assert quick_check(db) is None

    # the paired device connects with ITS OWN login and gets a spoken reply
    with DeviceLink(creds) as link:
        spoken = say(link, "Welcome back to the kitchen.", timeout=30)
    assert len(spoken.pcm) > spoken.rate       # over half a second of speech

    health = run.health()
    assert health["ok"] is True and health["registry"]["repairs"] == 1, health
    assert "hearth_db_restored_total 1" in run.metrics()
    http = sign_in(run.base, run.admin_password)
    repairs = http.get(f"{run.base}/api/overview", timeout=10).json()["storage"]["registry"]["repairs"]
    assert len(repairs) == 1 and str(db) in repairs[0]["text"]
    assert "Registry restored from a snapshot" in http.get(f"{run.base}/", timeout=10).text

    # the damaged file was moved aside with its reason, never deleted
    moved = list((run.data / "damaged").glob("hearth.db.*[0-9Z]"))
    assert len(moved) == 1
    if damage == "zero-length":
        assert moved[0].stat().st_size == 0
        assert "zero-length: no devices" in moved[0].with_name(moved[0].name + ".why").read_text()
    else:
        assert quick_check(moved[0]) is not None
    rows = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
        "select count(*) from devices_devices where revoked_at is null and password_hash is not null").fetchone()
    assert rows == (1,)
