"""What the fault tests share: `hearth run` as a subprocess on a data directory of their own, pairing
a device the real way over HTTP (code, a signed-in person confirms, activate), and a device's round trip.

    run = HearthRun(tmp_path / "var", storage={"snapshot_after_s": 1}).start()
    http, _ = sign_in(run.base, run.admin_password)
    creds = pair(run, http, "Kitchen")
    with DeviceLink(creds) as link: say(link, "hello")
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from conftest import free_port, toml
from mqtt.client import Credentials

HEARTH = str(Path(sys.executable).with_name("hearth"))
RUNNING = "Hearth is running"


class HearthRun:
    """`hearth run` on its own data directory, loopback only; stdout is read by a thread (never blocks)."""

    def __init__(self, data: Path, **sections):
        self.data = Path(data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.broker_port, self.web_port = free_port(), free_port()
        base = {"broker": {"bind": "127.0.0.1", "host": "127.0.0.1", "port": self.broker_port, "tls_port": 0},
                "web": {"bind": "127.0.0.1", "port": self.web_port, "threads": 4},
                "wyoming": {"enabled": False}, "discovery": {"enabled": False},
                "storage": {"snapshot_after_s": 1}, "stt": {"model": "tiny.en"}}
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config = base
        cfg = self.data / "hearth.toml"
        if not cfg.exists():
            cfg.write_text(toml(base))
        self.env = {**os.environ, "HEARTH_DATA": str(self.data)}
        self.env.pop("HEARTH_CONFIG", None)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.admin_password = ""
        self._changed = threading.Condition()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout: float = 60) -> "HearthRun":
        self.launch().wait_running(1, timeout)
        return self

    def launch(self) -> "HearthRun":
        """Start `hearth run` without waiting for it (several can then load their engines at once)."""
        self.lines.clear()
        self.proc = subprocess.Popen([HEARTH, "run"], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                if m := re.search(r"web admin password .*: (\S+)$", line.strip()):
                    self.admin_password = m.group(1)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_running(self, times: int = 1, timeout: float = 60) -> str:
        """Wait until "Hearth is running" has been printed `times` times (a restart re-executes in place)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(RUNNING in line for line in self.lines) < times:
                if self.proc.poll() is not None and not self._changed.wait(0.5):
                    raise AssertionError(f"hearth run exited ({self.proc.returncode}):\n{''.join(self.lines)}")
                if time.monotonic() > deadline:
                    raise AssertionError("hearth run did not come up:\n" + "".join(self.lines))
                self._changed.wait(0.2)
        self._wait_http(deadline)
        return self.output()

    def _wait_http(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/health", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("the web page did not answer")

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else 0

    def health(self) -> dict:
        return requests.get(f"{self.base}/health", timeout=5).json()

    def metrics(self) -> str:
        return requests.get(f"{self.base}/metrics", timeout=5).text

    def wait_snapshot(self, devices: int, timeout: float = 15) -> Path:
        """The newest whole snapshot holding at least `devices` devices (snapshot_after_s is 1 here)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for meta in sorted((self.data / "snapshots").glob("[0-9]*/snapshot.json"), reverse=True):
                if json.loads(meta.read_text())["devices"] >= devices:
                    return meta.parent
            time.sleep(0.2)
        raise AssertionError(f"no snapshot with {devices} device(s) within {timeout} s")


def sign_in(base: str, password: str) -> requests.Session:
    """A signed-in session with its CSRF header, as the browser's script sends it."""
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    reply = http.post(f"{base}/login", data={"csrf": token, "password": password}, allow_redirects=False, timeout=10)
    assert reply.status_code == 303, reply.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', http.get(f"{base}/", timeout=10).text).group(1)
    http.headers["X-CSRF-Token"] = csrf
    return http


def pair(run: HearthRun, http: requests.Session, name: str) -> Credentials:
    """Pair a device as a real one does: ask for a code, a signed-in person confirms it, activate."""
    state = uuid.uuid4().hex
    code = requests.get(f"{run.base}/v1/device/code", params={"state": state, "type": "satellite", "name": name},
                        timeout=10).json()
    confirmed = http.post(f"{run.base}/api/devices/confirm", json={"code": code["code"], "name": name}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    done = requests.post(f"{run.base}/v1/device/activate", json={"state": state, "token": code["token"]}, timeout=10)
    assert done.status_code == 200, done.text
    mqtt = done.json()["mqtt"]
    return Credentials("127.0.0.1", run.broker_port, mqtt["username"], mqtt["password"])


def espeak(tmp: Path, text: str):
    """Test speech from espeak-ng (not the voice Hearth speaks with), 16 kHz mono."""
    from appliance.audio.pcm import read_wav
    raw, out = tmp / f"{uuid.uuid4().hex}-raw.wav", tmp / f"{uuid.uuid4().hex}.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, timeout=30)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.2", "0.3"],
                   check=True, timeout=30)
    return read_wav(str(out))
