"""The whole service as a user runs it: `hearth run` as a subprocess, `hearth client` against it,
Ctrl-C leaves no process behind, and a second `hearth run` is refused without harm."""

from __future__ import annotations

import pytest

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import free_port, word_error_rate

pytestmark = pytest.mark.own_hearth

HEARTH = str(Path(sys.executable).with_name("hearth"))


def start(env, data):
    proc = subprocess.Popen([HEARTH, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Hearth is running"):
            return proc, lines
    proc.kill()
    raise AssertionError("hearth run did not start:\n" + "".join(lines))


@pytest.mark.timing
def test_run_say_transcribe_and_stop(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    (data / "hearth.toml").write_text(
        f"[broker]\nbind = \"127.0.0.1\"\nport = {free_port()}\ntls_port = 0\n"
        f"[web]\nbind = \"127.0.0.1\"\nport = {free_port()}\n"
        f"[wyoming]\nenabled = false\n[discovery]\nenabled = false\n")
    # systemd's notify socket, as the appliance's Type=notify unit gives it
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    env = {**os.environ, "HEARTH_DATA": str(data), "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "2000000"}
    proc, lines = start(env, data)
    try:
        assert notify.recv(100) == b"READY=1"
        assert notify.recv(100) == b"WATCHDOG=1"
        text = "".join(lines)
        assert "broker: mqtt://127.0.0.1:" in text and "web: http://127.0.0.1:" in text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("mosquitto" in c.name() for c in children)

        # a second run on the same data directory says so and changes nothing
        second = subprocess.run([HEARTH, "run"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert proc.poll() is None

        out = tmp_path / "r.wav"
        say = subprocess.run([HEARTH, "client", "say", "Hello from Hearth", "--out", str(out)],
                             env=env, capture_output=True, text=True, timeout=60)
        assert say.returncode == 0, say.stderr
        assert out.stat().st_size > 20000
        heard = subprocess.run([HEARTH, "client", "transcribe", str(out)], env=env, capture_output=True, text=True, timeout=60)
        assert heard.returncode == 0, heard.stderr
        assert word_error_rate("Hello from Hearth", heard.stdout) <= 0.34, heard.stdout

        bad = subprocess.run([HEARTH, "client", "transcribe", str(tmp_path / "missing.wav")], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and bad.stderr.startswith("Error: ")
        assert "Traceback" not in bad.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    while (state := notify.recv(100)) == b"WATCHDOG=1":
        pass
    assert state == b"STOPPING=1"
    notify.close()
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, f"{child} was left behind"


def test_client_without_a_running_hearth_says_what_to_do(tmp_path):
    env = {**os.environ, "HEARTH_DATA": str(tmp_path)}
    r = subprocess.run([HEARTH, "client", "say", "hi", "--out", str(tmp_path / "x.wav")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "hearth setup" in r.stderr


def test_bad_config_is_named(tmp_path):
    (tmp_path / "hearth.toml").write_text("[stt]\nbeam_size = \"wide\"\n")
    env = {**os.environ, "HEARTH_DATA": str(tmp_path)}
    r = subprocess.run([HEARTH, "config"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "stt.beam_size must be int" in r.stderr
