"""Shared fixtures: a real Mosquitto on a free loopback port, the real engines, test speech.

`hearth` is one running service (broker + engines + web) per test session; engines load once.
`device(name)` makes a broker login for a simulated device and returns a connected DeviceLink.
Test speech is synthesised here (Piper without its random noise, or espeak-ng + sox) and cached
per session; tests/voices.py adds Festival and room noise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from appliance.state import config
from appliance.audio.pcm import Wav, read_wav
from appliance.commands import client as device_client
from appliance.commands.client import DeviceLink
from appliance.process.broker import broker_config
from appliance.service import Service
from bench.common import word_error_rate  # noqa: F401  (tests import it from here)
from mqtt.broker import Account, ManagedBroker, hash_password, new_password
from mqtt import topics
from mqtt.client import Connection, Credentials
from voices import piper_wav


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml(sections: dict) -> str:
    """A few sections of a `hearth.toml` (a whole one from Settings: appliance.state.config.to_toml)."""
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n"


def make_settings(data_dir: Path, **sections) -> config.Settings:
    """Settings for a test instance: loopback only, free ports, Wyoming/discovery off unless asked."""
    base = {
        "broker": {"bind": "127.0.0.1", "host": "127.0.0.1", "port": free_port(), "tls_port": 0},
        "web": {"bind": "127.0.0.1", "port": free_port(), "threads": 4},
        "wyoming": {"enabled": False, "bind": "127.0.0.1", "port": free_port()},
        "discovery": {"enabled": False},
        # the tests pin the fastest model; the box's own choice is tested in tests/test_stt_choice.py
        "stt": {"model": "tiny.en"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return config.from_dict(base, data_dir)


class Hearth:
    """A running Hearth (managed broker + service) for tests."""

    def __init__(self, settings: config.Settings):
        self.settings = settings
        self.broker = ManagedBroker(broker_config(settings), shutil.which("mosquitto") or "/usr/sbin/mosquitto")
        self.service = Service(settings, reload_broker=self.broker.reload)
        self.test_accounts: dict[str, Account] = {}
        self.service.account_providers.append(lambda: list(self.test_accounts.values()))

    def start(self) -> "Hearth":
        self.service.accounts.ensure()
        self.service.sync_broker_files()
        self.broker.start()
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()
        self.broker.stop()

    def credentials(self, name: str, device_type: str = "") -> Credentials:
        """A broker login for a simulated device (the registry's job in production)."""
        password = new_password()
        self.test_accounts[name] = Account(name, hash_password(password), "device", device_type)
        self.service.sync_broker()
        return Credentials("127.0.0.1", self.settings.broker.port, name, password)

    def device(self, name: str) -> DeviceLink:
        return DeviceLink(self.credentials(name)).__enter__()

    def broker_log(self) -> str:
        """What Mosquitto wrote to its (rotating) log file so far."""
        return "".join(p.read_text() for p in (self.settings.data_dir / "broker").glob("mosquitto.log*"))

    def decode_seconds(self, pcm: bytes) -> float:
        """The box's own engine's decode of this 16 kHz audio, measured now: bounds that derive from it
        move with other work on the machine."""
        t0 = time.perf_counter()
        self.service.engine.transcribe(pcm)
        return time.perf_counter() - t0

    def drop_lines(self) -> list[str]:
        """Mosquitto's "Outgoing messages are being dropped for client X" lines so far."""
        return [line for line in self.broker_log().splitlines() if "being dropped" in line]

    def overflow_a_subscriber(self, name: str, messages: int = 1200) -> list[str]:
        """The positive control for "the broker dropped nothing": a throwaway QoS 1 subscriber (a
        device login of its own) stops reading, then sends itself `messages` QoS 1 messages, more than
        Mosquitto queues for one client (1,000). Returns the drop lines that name it."""
        topic, got = topics.device(name, "sink"), threading.Event()
        sink = Connection(self.credentials(name), lambda t, p: got.set(), [(topic, 1)], client_id=name)
        sink.client.max_inflight_messages_set(0)        # unthrottled: it will never see its acks
        sink.start()
        try:
            deadline = time.monotonic() + 10
            while not got.is_set() and time.monotonic() < deadline:     # subscribed: a message arrives
                sink.publish(topic, b"ready", 1)
                got.wait(0.2)
            assert got.is_set(), "the throwaway subscriber got nothing"
            sink.client.loop_stop()                  # it reads and acknowledges no more; what it sends is written at once
            for _ in range(messages):
                sink.publish(topic, b"x", 1)
            while time.monotonic() < deadline:
                if mine := [line for line in self.drop_lines() if f" {name}." in line or line.endswith(f" {name}")]:
                    return mine
                time.sleep(0.1)
            return []
        finally:
            sink.client.loop_start()
            sink.stop()

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.service.web.port}"


# --- test tiers --------------------------------------------------------------------------------
# `./build.sh test quick` runs every test that needs no Hearth of its own and streams no audio in
# real time; `./build.sh test` runs the rest too, in parallel except the tests marked `timing`
# (tests/tiers.py). A test that starts a Hearth (in this process or as a `hearth run/serve/broker/
# helper` subprocess) or streams in real time without its mark fails here, so the quick tier
# cannot quietly take in slow tests. The session's shared Hearths (`hearth`, `compat_hearth`) are
# the quick tier's own.
_running: dict = {"item": None, "shared": False}
HEARTH_STARTS = ("run", "serve", "broker", "helper")


def pytest_runtest_setup(item):
    _running["item"] = item


def pytest_runtest_teardown(item, nextitem):
    _running["item"] = None


def needs_mark(mark: str, what: str) -> None:
    item = _running["item"]
    if item is None or _running["shared"] or item.get_closest_marker(mark) is not None:
        return
    if record := os.environ.get("HEARTH_TIER_RECORD"):      # tests/tiers.py --record: list, do not fail
        with open(record, "a") as out:
            out.write(f"{mark} {item.nodeid}\n")
        return
    pytest.fail(f"{item.nodeid} {what} but is not marked `{mark}` (tests/conftest.py: test tiers)", pytrace=False)


_service_start = Service.start
_popen_init = subprocess.Popen.__init__
_transcribe = device_client.transcribe


def _guarded_start(self, *args, **kwargs):
    needs_mark("own_hearth", "starts a Hearth of its own")
    return _service_start(self, *args, **kwargs)


def _guarded_popen(self, args, *rest, **kwargs):
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
    hearth_cmd = Path(argv[0]).name == "hearth" or argv[1:3] == ["-m", "appliance.commands.cli"]
    if hearth_cmd and any(a in HEARTH_STARTS for a in argv[1:4]):
        needs_mark("own_hearth", f"starts `{' '.join(argv[:3])}`")
    return _popen_init(self, args, *rest, **kwargs)


def _guarded_transcribe(*args, **kwargs):
    if kwargs.get("realtime"):
        needs_mark("realtime", "streams audio in real time")
    return _transcribe(*args, **kwargs)


Service.start = _guarded_start
subprocess.Popen.__init__ = _guarded_popen
device_client.transcribe = _guarded_transcribe


@pytest.fixture(scope="session")
def hearth(tmp_path_factory):
    _running["shared"] = True
    try:
        h = Hearth(make_settings(tmp_path_factory.mktemp("hearth"))).start()
    finally:
        _running["shared"] = False
    yield h
    h.stop()


@pytest.fixture(scope="session")
def compat_hearth(tmp_path_factory):
    """A second Hearth with the compatibility edges on: Hermes, and Wyoming on a free loopback port."""
    _running["shared"] = True
    try:
        h = Hearth(make_settings(tmp_path_factory.mktemp("compat"), hermes={"enabled": True},
                                 wyoming={"enabled": True})).start()
    finally:
        _running["shared"] = False
    yield h
    h.stop()


@pytest.fixture
def device(hearth, request):
    links = []
    counter = iter(range(1000))

    def make(name: str | None = None) -> DeviceLink:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:40].strip("-")
        link = hearth.device(name or f"{base}-{next(counter)}")
        links.append(link)
        return link

    yield make
    for link in links:
        link.__exit__(None, None, None)


# --- test speech -----------------------------------------------------------

@pytest.fixture(scope="session")
def speech(tmp_path_factory, hearth):
    """speech(text, voice='piper'|'espeak', rate=16000, pad_ms=300, gain=1.0) -> Wav (cached)."""
    cache_dir = tmp_path_factory.mktemp("speech")
    made: dict = {}

    def make(text: str, voice: str = "piper", rate: int = 16000, pad_ms: int = 300, gain: float = 1.0,
             lead_ms: int = 200) -> Wav:
        key = (text, voice, rate, pad_ms, gain, lead_ms)
        if key in made:
            return made[key]
        out = cache_dir / f"s{len(made)}.wav"
        raw = cache_dir / f"s{len(made)}-raw.wav"
        if voice == "piper":
            # without Piper's random noise: the same clip every run (a random one scored 0.16 for the
            # wake word at some chunk alignments and 1.0 at others, so tests passed or failed by luck)
            piper_wav(hearth, text, raw)
        else:
            subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out),
                        "vol", str(gain), "pad", f"{lead_ms / 1000}", f"{pad_ms / 1000}"], check=True)
        made[key] = read_wav(str(out))
        return made[key]

    return make


def replace_settings(settings: config.Settings, section: str, **changes) -> config.Settings:
    return dataclasses.replace(settings, **{section: dataclasses.replace(getattr(settings, section), **changes)})
