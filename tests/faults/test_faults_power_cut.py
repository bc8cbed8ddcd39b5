"""30 power cuts during pairing and settings writes lose no acknowledged write.

A writer process (faults_writer.py) pairs devices, saves their settings, rewrites the config file
and takes registry snapshots through Hearth's own code, printing each write once it has returned;
it is killed with SIGKILL at a random moment (seeded, so a failure replays). Each writer is forked
from one process that has already imported Hearth, so 30 cuts fit in seconds, not minutes. After every cut the
registry passes quick_check, every acknowledged device has its login and its settings, the config
file parses and holds at least the last acknowledged value, and every snapshot is whole.
"""

from __future__ import annotations

import pytest

import os
import random
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from appliance.state.snapshots import Snapshots, quick_check

pytestmark = pytest.mark.own_hearth

WRITER = Path(__file__).with_name("faults_writer.py")
RUNS = 30


def cut(writers: subprocess.Popen, seed: int, after_s: float) -> list[str]:
    """One writer writes for `after_s` and is killed with SIGKILL; the lines it printed (whole lines only)."""
    writers.stdin.write(f"{seed} {after_s:.3f}\n".encode())
    writers.stdin.flush()
    size = writers.stdout.readline()
    assert size.strip().isdigit(), f"the writer stopped: {size!r} (see writer.log)"
    out = writers.stdout.read(int(size)).decode()
    assert out.startswith("ready\n"), out
    return out.split("\n")[1:-1]               # the last piece may be half a line: not acknowledged


def test_power_cuts_during_writes_lose_no_acknowledged_write(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    (data / "hearth.toml").write_text("[privacy]\nretention_days = 1\n")
    rng = random.Random(20261130)
    devices: set[str] = set()
    settings: dict[str, int] = {}
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "writer.log"
    writers = subprocess.Popen([sys.executable, str(WRITER), str(data)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=log.open("wb"), env=env)
    try:
        _cut_and_check(writers, data, rng, devices, settings)
    finally:
        writers.kill()
        writers.wait(10)
    assert len(devices) >= RUNS // 2 and len(settings) >= RUNS // 3, (len(devices), len(settings))
    assert time.monotonic() - t0 < 60


def _cut_and_check(writers, data: Path, rng: random.Random, devices: set, settings: dict) -> None:
    config_at_least, snapshots = 1, 0
    for run in range(RUNS):
        for line in cut(writers, run + 1, rng.uniform(0.02, 0.5)):
            kind, *rest = line.split()
            match kind:
                case "device":
                    devices.add(rest[0])
                case "setting":
                    settings[rest[0]] = int(rest[1])
                case "config":
                    config_at_least = int(rest[0])
                case "snapshot":
                    snapshots += rest[0] != "failed"

        db = data / "hearth.db"
        assert quick_check(db) is None, f"run {run}"
        conn = sqlite3.connect(db)
        try:
            paired = {r[0] for r in conn.execute(
                "select id from devices_devices where password_hash is not null and activated_at is not null")}
            stored = {r[0]: r[1] for r in conn.execute(
                "select device_id, json_extract(value, '$.name') from devices_settings where key = 'location'")}
        finally:
            conn.close()
        assert devices <= paired, f"run {run}: acknowledged devices lost: {devices - paired}"
        for device, n in settings.items():
            assert stored.get(device) == f"loc-{n}", f"run {run}: {device} lost its acknowledged settings"
        cfg = tomllib.loads((data / "hearth.toml").read_text())
        assert cfg["privacy"]["retention_days"] >= config_at_least, f"run {run}"
        for snap in Snapshots(data, 7).list():
            assert quick_check(snap.db) is None, f"run {run}: {snap.path} is not whole"
    assert snapshots >= 3, snapshots            # the cuts fell among real writes of every kind
    print(f"{RUNS} cuts: {len(devices)} devices, {len(settings)} settings, config up to {config_at_least}, "
          f"{snapshots} snapshots acknowledged; none lost")
