"""image/compose.yaml brought up by a real container engine, down and up again (issue 26).

The engine is what Debian 12 installs: podman 4.3 serving its Docker-compatible API on a socket
of this test's own (`podman system service`), driven by docker-compose 1.29 (the Compose file
format's reference implementation; Debian's podman-compose 1.0.x cannot join one service to
another's namespaces, which the file needs). The container image is the one the image tier
builds (`localhost/hearth:latest`, rebuilt only when stale, like tests/image/test_container.py).

Twice: `up -d`; `setup` ran (its first-start work only the first time: the admin password is
shown once); `/health` answers on the published web port; a device pairs the first time (code,
confirmed on the web page with the password from the setup log, activated: its broker login)
and transcribes a spoken WAV over the published MQTT port, both times with that login; `down`.
The data volume outlives `down`: the second time the same password signs in and the device is
still paired.

Two settings of this machine's sandbox, not of the compose file, are given to podman in a
containers.conf of the test's own: runc (this kernel's cgroup v1 + v2 hybrid makes crun refuse)
and open-file and process limits no higher than this process has (it may not raise them).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from vmtools import OUT, ROOT, built_image, free_port, record

pytestmark = [pytest.mark.image, pytest.mark.own_hearth, pytest.mark.timeout(900)]

COMPOSE = ROOT / "image" / "compose.yaml"
IMAGE = "localhost/hearth:latest"
HEARTH = Path(sys.executable).parent / "hearth"
SAID = "Turn on the kitchen light."
HEALTH_TIMEOUT_S = 180
PASSWORD = re.compile(r"web admin password .*: (\S+)\s*$", re.M)


class Engine:
    """podman's Docker-compatible API on a private socket, with this sandbox's containers.conf."""

    def __init__(self, work: Path):
        self.work = work
        self.socket = work / "podman.sock"
        self.conf = work / "containers.conf"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Engine":
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], int(Path("/proc/sys/kernel/pid_max").read_text()))
        self.conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                             f'[engine]\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf), "DOCKER_HOST": f"unix://{self.socket}"}
        log = (self.work / "podman-service.log").open("ab")
        self.proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                                     env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"podman system service did not start:\n{(self.work / 'podman-service.log').read_text()[-2000:]}"
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


class Stack:
    """One compose project of the file as shipped, on free loopback ports."""

    def __init__(self, engine: Engine, work: Path):
        self.engine = engine
        self.project = f"hearth-compose-test-{os.getpid()}"      # apart from a real `hearth` project here
        # docker-compose 1.29 predates the top-level `name:` key; the project is named by -p instead
        # (as this test must anyway). Nothing else of the file is changed.
        lines = COMPOSE.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("name: ")]
        assert len(lines) - len(kept) == 1, "image/compose.yaml should name its project once (name: hearth)"
        self.file = work / "compose.yaml"
        self.file.write_text("".join(kept))
        self.web_port, self.mqtt_port, wyoming = free_port(), free_port(), free_port()
        self.env = {**engine.env, "HEARTH_WEB_PORT": str(self.web_port), "HEARTH_MQTT_PORT": str(self.mqtt_port),
                    "HEARTH_WYOMING_PORT": str(wyoming)}
        self.base = f"http://127.0.0.1:{self.web_port}"

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["docker-compose", "-p", self.project, "-f", str(self.file), "--no-ansi", *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def up(self) -> float:
        started = time.monotonic()
        done = self.compose("up", "-d")
        assert done.returncode == 0, f"docker-compose up failed:\n{done.stdout}\n{done.stderr}"
        deadline = started + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{self.base}/health", timeout=5).json()
                if health.get("ok"):
                    assert health["broker"] and health["stt"] and health["tts"], health
                    return time.monotonic() - started
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"/health did not answer ok within {HEALTH_TIMEOUT_S} s:\n{self.logs()[-4000:]}")

    def down(self, volumes: bool = False) -> None:
        """`down`. podman will not remove `mosquitto` while `hearth`, which shares its namespaces,
        exists, and docker-compose 1.x removes all containers at once: then `down` says so and a
        second `down` removes the rest (docs/appliance.md). Docker and Compose v2 need one."""
        args = ("down", "-v") if volumes else ("down",)
        done = self.compose(*args)
        if done.returncode != 0:
            assert "has dependent containers which must be removed before it" in done.stderr, done.stderr
            done = self.compose(*args)
        assert done.returncode == 0, f"docker-compose down failed:\n{done.stdout}\n{done.stderr}"
        left = self.podman("ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                           "--format", "{{.Names}}")
        assert left == "", f"containers left after down: {left}"

    def podman(self, *args: str) -> str:
        return subprocess.run(["podman", *args], env=self.engine.env, check=True, capture_output=True,
                              text=True, timeout=60).stdout.strip()

    def logs(self, service: str = "") -> str:
        done = self.compose("logs", "--no-color", *([service] if service else []), timeout=60)
        return done.stdout + done.stderr

    def volume(self) -> str:
        return self.podman("volume", "ls", "--format", "{{.Name}}", "--filter", f"name={self.project}_hearth-data")


def sign_in(base: str, password: str) -> requests.Session:
    http = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(f"{base}/login", timeout=30).text).group(1)
    reply = http.post(f"{base}/login", data={"csrf": token, "password": password}, allow_redirects=False, timeout=30)
    assert reply.status_code == 303, f"the setup log's admin password does not sign in: {reply.status_code}"
    page = http.get(f"{base}/", timeout=30).text
    http.headers["X-CSRF-Token"] = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    return http


def pair(base: str, password: str) -> dict:
    """A device asks for a code, the owner confirms it on the web page, the device activates."""
    code = requests.get(f"{base}/v1/device/code", params={"state": "compose-test", "name": "Compose speaker"},
                        timeout=30).json()
    confirmed = sign_in(base, password).post(f"{base}/api/devices/confirm", json={"code": code["code"], "room": "Hall"},
                                             timeout=30)
    assert confirmed.status_code == 200, confirmed.text
    activated = requests.post(f"{base}/v1/device/activate", json={"state": "compose-test", "token": code["token"]},
                              timeout=30)
    assert activated.status_code == 200, activated.text
    return {"id": confirmed.json()["device"]["id"], **activated.json()["mqtt"]}


def transcribe(stack: Stack, device: dict, wav: Path) -> tuple[str, float]:
    broker = f"mqtt://{device['username']}:{device['password']}@127.0.0.1:{stack.mqtt_port}"
    started = time.monotonic()
    done = subprocess.run([str(HEARTH), "client", "transcribe", str(wav), "--broker", broker, "--timeout", "60"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"hearth client transcribe failed:\n{done.stdout}\n{done.stderr[-2000:]}\n" \
                                 f"{stack.logs('hearth')[-3000:]}"
    return done.stdout.strip(), time.monotonic() - started


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    built_image("container", OUT / "hearth-container-x86_64.docker.tar", timeout=1500)
    for tool in ("podman", "docker-compose", "runc"):
        assert shutil.which(tool), f"{tool} is missing (./build.sh test-image installs it: IMAGE_TEST_DEBS)"
    assert subprocess.run(["podman", "image", "exists", IMAGE]).returncode == 0, f"no {IMAGE}: the build imports it"
    work = tmp_path_factory.mktemp("compose")
    engine = Engine(work).start()
    yield engine
    engine.stop()


def test_compose_up_and_down_twice_keeps_the_data_and_transcribes(engine, tmp_path):
    from voices import RATE, in_room, quiet, say

    from appliance.audio.pcm import wav_bytes

    speech = in_room([quiet(0.5), say(None, "espeak", SAID), quiet(0.8)], seed=26)     # espeak-ng in room noise
    wav = tmp_path / "kitchen.wav"
    wav.write_bytes(wav_bytes(np.clip(speech, -32768, 32767).astype("<i2").tobytes(), RATE))

    stack = Stack(engine, tmp_path)
    started = time.monotonic()
    password, device = "", {}
    try:
        for cycle in (1, 2):
            ready_s = stack.up()
            record(f"compose_up_to_health_{cycle}_s", round(ready_s, 1))
            setup_log = stack.logs("setup")
            assert "data directory ready: /var/lib/hearth" in setup_log, setup_log[-2000:]
            shown = PASSWORD.findall(setup_log)
            if cycle == 1:
                assert len(shown) == 1, f"the first setup should show the admin password once:\n{setup_log[-2000:]}"
                password = shown[0]
                device = pair(stack.base, password)
            else:
                assert shown == [], f"setup made a new admin password on the second up:\n{setup_log[-2000:]}"
                listed = sign_in(stack.base, password).get(f"{stack.base}/api/devices", timeout=30).json()
                assert device["id"] in json.dumps(listed), f"the paired device is gone after down and up: {listed}"
            text, took = transcribe(stack, device, wav)
            record(f"compose_transcribe_{cycle}_s", round(took, 2))
            words = set(re.findall(r"[a-z]+", text.lower()))
            assert {"kitchen", "light"} <= words, f"up {cycle}: heard {text!r} for {SAID!r}"
            stack.down()
            assert stack.volume(), f"down removed the data volume {stack.project}_hearth-data"
        record("compose_two_cycles_s", round(time.monotonic() - started, 1))
    finally:
        stack.down(volumes=True)
    assert stack.volume() == "", "down -v left the test's data volume behind"
