"""`hearth broker` (the appliance's broker unit): Mosquitto under Hearth's supervisor in the
foreground. Its log reaches stdout (the journal) without connection lines, the transports file
records which listener a login came through, SIGHUP reloads (a changed config restarts), SIGTERM
stops it and its child."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from appliance.state.accounts import CLI_USER, LocalAccounts
from conftest import free_port

pytestmark = pytest.mark.own_hearth

HEARTH = str(Path(sys.executable).with_name("hearth"))


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_hearth_broker_runs_mosquitto_quietly_and_stops_with_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    (data / "hearth.toml").write_text(f"[broker]\nmanage = false\nbind = \"127.0.0.1\"\nport = {port}\ntls_port = 0\n")
    env = {**os.environ, "HEARTH_DATA": str(data)}
    subprocess.run([HEARTH, "setup"], env=env, check=True, capture_output=True, timeout=60)
    out = tmp_path / "journal.txt"
    with out.open("w") as fh:
        proc = subprocess.Popen([HEARTH, "broker"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    pid_file = data / "broker" / "mosquitto.pid"

    def pid() -> int:            # Mosquitto writes it at start and removes it on the way out
        try:
            return int(pid_file.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    try:
        first = wait_for(pid, 20)
        login = LocalAccounts(data).login(CLI_USER)
        pub = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", f"hearth/{CLI_USER}/x", "-m", "y"]
        for _ in range(20):
            subprocess.run(pub + ["-u", CLI_USER, "-P", "wrong"], capture_output=True, timeout=10)
        subprocess.run(pub + ["-u", CLI_USER, "-P", login.password], check=True, timeout=10)
        transports = data / "broker" / "transports.json"
        assert wait_for(lambda: transports.exists() and json.loads(transports.read_text())) == {CLI_USER: port}

        proc.send_signal(signal.SIGHUP)            # logins and ACL: the same broker re-reads them
        time.sleep(0.5)
        assert pid() == first and proc.poll() is None
        conf = data / "broker" / "mosquitto.conf"
        conf.write_text(conf.read_text().replace("set_tcp_nodelay true", "set_tcp_nodelay true\n# changed"))
        proc.send_signal(signal.SIGHUP)            # a changed config: a new broker
        wait_for(lambda: pid() not in (0, first))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    journal = out.read_text()
    assert "ACL pattern" in journal                 # Mosquitto's own lines arrive ...
    assert "New connection" not in journal and "not authorised" not in journal     # ... its chatter does not
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(conf) in " ".join(p.info["cmdline"] or [])]
