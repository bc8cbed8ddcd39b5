"""30 power cuts during pairing and settings writes lose no acknowledged write.

A writer process (faults_writer.py) pairs devices, saves their settings, rewrites the config file
and takes registry snapshots through Hearth's own code, printing each write once it has returned;
it is killed with SIGKILL at a random moment (seeded, so a failure replays). After every cut the
registry passes quick_check, every acknowledged device has its login and its settings, the config
file parses and holds at least the last acknowledged value, and every snapshot is whole.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from appliance.snapshots import Snapshots, quick_check

WRITER = Path(__file__).with_name("faults_writer.py")
RUNS = 30


def cut(data: Path, seed: int, after_s: float) -> list[str]:
    """Start the writer, let it write for `after_s`, kill -9; the lines it printed (whole lines only)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(WRITER), str(data), str(seed)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stdout.readline()
        assert first == b"ready\n", first + proc.stderr.read()
        time.sleep(after_s)
        proc.send_signal(signal.SIGKILL)
        out = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    return [line for line in out.decode().split("\n")[:-1]]         # the last piece may be half a line


def test_power_cuts_during_writes_lose_no_acknowledged_write(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    (data / "hearth.toml").write_text("[privacy]\nretention_days = 1\n")
    rng = random.Random(20261130)
    devices: set[str] = set()
    settings: dict[str, int] = {}
    config_at_least, snapshots, t0 = 1, 0, time.monotonic()
    for run in range(RUNS):
        for line in cut(data, run + 1, rng.uniform(0.02, 0.6)):
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
    assert len(devices) >= RUNS // 2 and len(settings) >= RUNS // 3 and snapshots >= 3, \
        (len(devices), len(settings), snapshots)        # the cuts fell among real writes
    assert time.monotonic() - t0 < 90
