"""A dying broker under `hearth run` (a subprocess, as a person starts it): a torn persistence
file, kill -9, and a broker that cannot start for a while. Hearth keeps running, moves the bad
file aside (never deletes it), restarts Mosquitto with backoff, and a device's next transcript works."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appliance.commands import client
from appliance.state.accounts import CLI_USER, LocalAccounts
from conftest import free_port, word_error_rate
from mqtt.client import Credentials

pytestmark = [pytest.mark.own_hearth, pytest.mark.timing]

HEARTH = str(Path(sys.executable).with_name("hearth"))
MOSQUITTO = "/usr/sbin/mosquitto"
TEXT = "Set a timer for ten minutes."


def torn_persistence_file(db_dir: Path) -> bytes:
    """A real mosquitto.db (retained messages, a durable session), cut in the middle: header intact."""
    db_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = db_dir.parent / "make-db.conf"
    conf.write_text(f"user {os.environ.get('USER') or 'root'}\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {db_dir}/\nlog_dest none\nlistener {port} 127.0.0.1\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)])
    try:
        for _ in range(50):
            if subprocess.run(["mosquitto_pub", "-p", str(port), "-t", "probe", "-m", "x"]).returncode == 0:
                break
            time.sleep(0.1)
        for i in range(100):
            subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-r", "-t", f"room/{i}",
                            "-m", f"retained message {i} " + "x" * 200], check=True)
    finally:
        broker.terminate()           # Mosquitto saves its database on the way out
        broker.wait(10)
    conf.unlink()
    db = db_dir / "mosquitto.db"
    whole = db.read_bytes()
    assert len(whole) > 20_000 and whole.startswith(b"\x00\xb5\x00mosquitto db")
    torn = whole[: len(whole) // 2]
    db.write_bytes(torn)
    return torn


class RunningHearth:
    def __init__(self, data: Path, torn: bytes):
        self.data = data
        self.torn = torn
        self.log = data / "run-output.txt"
        self.proc: subprocess.Popen | None = None
        self.web = ""
        self.broker_port = 0

    def start(self, own_group: bool = False) -> "RunningHearth":
        """`own_group`: in a process group of its own, as a terminal runs it (Ctrl-C signals the group)."""
        self.broker_port, web_port = free_port(), free_port()
        (self.data / "hearth.toml").write_text(
            f"[broker]\nbind = \"127.0.0.1\"\nport = {self.broker_port}\ntls_port = 0\n"
            f"[web]\nbind = \"127.0.0.1\"\nport = {web_port}\n[wyoming]\nenabled = false\n[discovery]\nenabled = false\n")
        self.web = f"http://127.0.0.1:{web_port}"
        env = {**os.environ, "HEARTH_DATA": str(self.data)}
        env.pop("NOTIFY_SOCKET", None)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([HEARTH, "run"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=own_group)
        deadline = time.monotonic() + 120
        while "Hearth is running" not in self.output():
            assert self.proc.poll() is None, "hearth run exited:\n" + self.output()
            assert time.monotonic() < deadline, "hearth run did not start:\n" + self.output()
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)

    def broker_pid(self) -> int:
        return int((self.data / "broker" / "mosquitto.pid").read_text().strip())

    def health(self) -> dict:
        with urllib.request.urlopen(self.web + "/health", timeout=5) as r:
            return json.load(r)

    def link(self) -> client.DeviceLink:
        login = LocalAccounts(self.data).login(CLI_USER)
        return client.DeviceLink(Credentials("127.0.0.1", self.broker_port, login.username, login.password)).__enter__()

    def wait_broker(self, up: bool, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.health()["broker"] is up:
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"/health did not say broker={up} within {timeout} s:\n{self.output()[-3000:]}")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    data = tmp_path_factory.mktemp("faults-broker")
    torn = torn_persistence_file(data / "broker" / "db")
    h = RunningHearth(data, torn).start()
    yield h
    h.stop()


def transcribe_ok(h: RunningHearth, wav, within: float = 30.0) -> None:
    """A device connects (retrying while the broker comes back) and gets a right transcript."""
    deadline = time.monotonic() + within
    while True:
        try:
            link = h.link()
            break
        except client.ClientError:
            assert time.monotonic() < deadline, "the device could not connect:\n" + h.output()[-3000:]
            time.sleep(0.5)
    try:
        heard = client.transcribe(link, wav, timeout=30)
    finally:
        link.__exit__(None, None, None)
    assert word_error_rate(TEXT, heard.final.text) <= 0.3, heard.final.text


def test_a_torn_persistence_file_is_moved_aside_and_the_broker_comes_up(running, speech):
    db_dir = running.data / "broker" / "db"
    aside = list(db_dir.glob("mosquitto.db.bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == running.torn       # kept, byte for byte
    assert "Mosquitto cannot load" in running.output() and aside[0].name in running.output()
    assert running.health()["broker"] is True
    transcribe_ok(running, speech(TEXT))


def test_kill_9_of_the_broker_is_recovered_and_the_next_transcript_works(running, speech):
    wav = speech(TEXT)
    transcribe_ok(running, wav)                  # positive control: it works before the kill
    old = running.broker_pid()
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    while running.broker_pid() == old:           # a new Mosquitto writes its pid file
        assert time.monotonic() - t0 < 10, "no new broker within 10 s:\n" + running.output()[-3000:]
        time.sleep(0.05)
    running.wait_broker(True, 15)
    back = time.monotonic() - t0
    assert running.proc.poll() is None
    transcribe_ok(running, wav)
    assert back < 10, back
    print(f"broker killed -9: new broker and the service reconnected after {back:.1f} s")


def test_a_broker_that_cannot_start_is_retried_with_backoff_while_hearth_keeps_running(running, speech):
    wav = speech(TEXT)
    blocker = None
    for _ in range(3):                       # take the broker's port the moment it dies
        os.kill(running.broker_pid(), signal.SIGKILL)
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                blocker.bind(("127.0.0.1", running.broker_port))
                blocker.listen()
                break
            except OSError:
                time.sleep(0.002)
        else:
            blocker.close()
            blocker = None
            running.wait_broker(True, 15)
            continue
        break
    assert blocker is not None, "could not take the broker's port"
    attempts = lambda: [ln for ln in running.output().splitlines() if "the broker did not start (attempt" in ln]  # noqa: E731
    before = len(attempts())
    try:
        running.wait_broker(False, 10)
        seen = time.monotonic()
        while len(attempts()) < before + 2:          # the page keeps answering: broker down, Hearth up
            assert time.monotonic() - seen < 30, running.output()[-3000:]
            assert running.health()["broker"] is False
            assert running.proc.poll() is None
            time.sleep(0.3)
    finally:
        blocker.close()
    attempts = attempts()
    pauses = [float(re.search(r"next try in ([0-9.]+) s", line).group(1)) for line in attempts[-2:]]
    assert pauses[1] > pauses[0], attempts                                   # the pauses grow
    assert re.search(r"port \d+ is already in use", attempts[-1])
    running.wait_broker(True, 40)
    transcribe_ok(running, wav)


def test_ctrl_c_stops_the_broker_and_never_restarts_it(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group. Hearth stops Mosquitto itself
    and its supervisor never "restarts" the broker it is stopping (it used to log "the broker exited
    (status 0); restarting it" at every Ctrl-C)."""
    import psutil
    h = RunningHearth(tmp_path, b"").start(own_group=True)
    try:
        first = h.broker_pid()
        os.kill(first, signal.SIGKILL)           # the control: a broker that dies is restarted, and says so
        deadline = time.monotonic() + 30
        while "restarting it" not in h.output() or h.broker_pid() == first or not h.health()["broker"]:
            assert time.monotonic() < deadline, h.output()[-3000:]
            time.sleep(0.2)
        restarts = h.output().count("restarting it")
        second = h.broker_pid()
        os.killpg(h.proc.pid, signal.SIGINT)     # Ctrl-C
        assert h.proc.wait(30) == 0, h.output()[-3000:]
    finally:
        if h.proc.poll() is None:
            h.proc.kill()
    out = h.output()
    assert out.count("restarting it") == restarts, out[-3000:]
    assert "the broker is back (restart 2)" not in out, out[-3000:]
    assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE
