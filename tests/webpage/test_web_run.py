"""`hearth run` as a person starts it: the admin password is printed once, on first start only,
and the System page's restart brings the same process back (re-executed) with the same settings."""

from __future__ import annotations

import pytest

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from conftest import free_port
from web_support import loopback_config, sign_in

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]


def _lines(proc: subprocess.Popen) -> queue.Queue:
    out: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout], daemon=True).start()
    return out


def _until(out: queue.Queue, pattern: str, timeout: float = 90) -> list[str]:
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        try:
            line = out.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line.rstrip())
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; saw {seen}")


def test_first_start_prints_the_password_once_and_restart_reexecutes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    web_port = free_port()
    (data / "hearth.toml").write_text(loopback_config(web_port))
    env = {**os.environ, "HEARTH_DATA": str(data), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out = _lines(proc)
        first = _until(out, "Hearth is running")
        [note] = [line for line in first if "web admin password" in line]
        password = note.rsplit(": ", 1)[1]
        base = f"http://127.0.0.1:{web_port}"
        http, _ = sign_in(base, password)
        r = http.post(f"{base}/api/system/restart")
        assert r.status_code == 200 and r.json()["restarting"] is True
        again = _until(out, "Hearth is running")
        assert not any("web admin password" in line for line in again)       # shown once only
        assert proc.poll() is None                                          # the same process, re-executed
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"{base}/health", timeout=2).json()["broker"]:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        fresh, _ = sign_in(base, password)                                  # same password after restart
        assert fresh.get(f"{base}/api/overview").json()["broker"]["connected"] is True
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
