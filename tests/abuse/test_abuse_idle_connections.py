"""1,100 silent TCP connections from one LAN address to each of Hearth's ports, with Hearth started
under the open-file limit the appliance's hearth.service would have without its own raise (1,024):
a paired device's round trip stays within 2x quiet, /health answers within 2 s, a new device pairs
and speaks, and only the attacker's connections are refused (a Wyoming client from another address
is answered). Positive controls: the attacker really holds what the caps allow and no more, and
the rest of its connections were refused or closed by the server.

Hearth is a real `hearth run` subprocess (real Mosquitto, real engines); the attacker's sockets come
from 127.0.0.66, everything else from 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from appliance.commands.client import DeviceLink
from bench import abuse
from bench.common import word_error_rate
from conftest import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))   # `hearth run` as the fault tests start it
from faults_kit import HEARTH, HearthRun, pair, sign_in  # noqa: E402

pytestmark = [pytest.mark.timeout(600), pytest.mark.own_hearth, pytest.mark.realtime, pytest.mark.timing]

ATTACKER = "127.0.0.66"
IDLE = 1100
NOFILE = 1024


class LimitedRun(HearthRun):
    """`hearth run` under `ulimit -n 1024` (soft and hard), Wyoming on."""

    def launch(self) -> "LimitedRun":
        self.lines.clear()
        self.proc = subprocess.Popen([HEARTH, "run"], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                                      (NOFILE, NOFILE)))
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= IDLE + 500, f"this test process may open only {hard} files"     # a failure, never a skip
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    tmp = tmp_path_factory.mktemp("idle")
    run = LimitedRun(tmp / "var", wyoming={"enabled": True, "bind": "127.0.0.1", "port": free_port()}).start(timeout=120)
    http = sign_in(run.base, run.admin_password)
    assert (run.data.stat().st_mode & 0o777) == 0o700                       # private whatever the umask
    assert ((run.data / "hearth.db").stat().st_mode & 0o777) == 0o600
    link = DeviceLink(pair(run, http, "Bystander")).__enter__()
    clip = abuse.make_clip(None, abuse.B_TEXT, "espeak", tmp / "b.wav")
    round_trips(link, clip, 1)                      # warm-up: the first decode pays for loading
    yield run, http, link, clip, tmp
    link.__exit__(None, None, None)
    run.stop()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class IdleFlood:
    """`count` TCP connections from `source` that never send a byte; notes what the server closes."""

    def __init__(self, port: int, count: int = IDLE, source: str = ATTACKER):
        self.socks: list[socket.socket] = []
        self.closed_by_server = 0
        # paho's loop uses select(), which takes no descriptor past 1,023: keep low ones for the devices
        spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(32)]
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.bind((source, 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self.socks.append(s)
        for fd in spare:
            os.close(fd)

    def settle(self, refused: int, seconds: float = 10.0) -> None:
        """Wait (bounded) until the server refused or closed `refused` of them."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.closed_by_server < refused:
            self.sweep()
            time.sleep(0.2)

    def sweep(self) -> int:
        """Drop the sockets the server closed (or refused); how many it still holds open."""
        poller = select.poll()
        for s in self.socks:
            poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        gone = {fd for fd, _ in poller.poll(0)}
        keep = []
        for s in self.socks:
            if s.fileno() in gone:
                try:
                    while s.recv(65536):         # an error event or a 503 first, then the end
                        pass
                except BlockingIOError:
                    keep.append(s)                # only data so far: the server has not closed it
                    continue
                except OSError:
                    pass
                self.closed_by_server += 1
                s.close()
            else:
                keep.append(s)
        self.socks = keep
        return len(keep)

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []


def round_trips(link, clip, n: int) -> list[float]:
    """The bystander speaks in real time: seconds from the end of speech to its final, each checked."""
    out = []
    for _ in range(n):
        seconds, text = abuse.round_trip(link, clip)
        assert word_error_rate(abuse.B_TEXT, text) <= 0.4, text
        out.append(seconds)
    return out


def health_times(run, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = requests.get(f"{run.base}/health", timeout=5)
        assert r.status_code == 200, r.text
        out.append(time.monotonic() - t0)
        time.sleep(0.1)
    return out


def wyoming_describe(port: int) -> dict:
    """A Wyoming client from 127.0.0.1: `describe` must be answered with `info`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b'{"type": "describe"}\n')
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            assert chunk, "the Wyoming server closed a client from another address"
            data += chunk
        return json.loads(data.split(b"\n", 1)[0])


def held_by_hearth(run, port: int) -> int:
    """The attacker's connections Hearth has accepted and keeps open on `port`."""
    return sum(1 for c in psutil.Process(run.proc.pid).net_connections(kind="tcp")
               if c.raddr and c.raddr.ip == ATTACKER and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def fds(run) -> int:
    return psutil.Process(run.proc.pid).num_fds()


def metric(run, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", run.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("target", ["wyoming", "web"])
def test_1100_idle_connections_from_one_address(rig, target):
    run, http, link, clip, tmp = rig
    port = run.config["wyoming"]["port"] if target == "wyoming" else run.web_port
    cap = run_cap(run, target)
    quiet = round_trips(link, clip, 5)
    quiet_health = health_times(run, 5)
    fds_quiet = fds(run)

    flood = IdleFlood(port)
    try:
        flood.settle(IDLE - cap)
        held_at_first = held_by_hearth(run, port)
        fds_attacked = fds(run)
        attacked = round_trips(link, clip, 5)
        attacked_health = health_times(run, 10)
        newcomer = pair(run, http, f"New-{target}")                  # pairing works, and the new device speaks
        with DeviceLink(newcomer) as fresh:
            round_trips(fresh, clip, 1)
        if target == "wyoming":
            assert wyoming_describe(port)["type"] == "info"          # another address is not refused
        flood.sweep()
        held = held_by_hearth(run, port)
    finally:
        flood.close()

    print(f"{target}: bystander quiet {statistics.median(quiet) * 1000:.0f} ms, under {IDLE} idle connections "
          f"{statistics.median(attacked) * 1000:.0f} ms (max {max(attacked) * 1000:.0f}); /health quiet max "
          f"{max(quiet_health) * 1000:.0f} ms, attacked max {max(attacked_health) * 1000:.0f} ms; attacker holds "
          f"{held_at_first} -> {held}, {flood.closed_by_server} closed by the server; Hearth fds {fds_quiet} -> "
          f"{fds_attacked}")
    assert statistics.median(attacked) <= 2 * statistics.median(quiet), (quiet, attacked)
    assert max(attacked_health) < 2.0
    assert held_at_first <= cap and flood.closed_by_server >= IDLE - cap      # positive control: refused, not held
    assert fds_attacked < fds_quiet + cap + 16 < NOFILE - 256                 # Hearth's own files keep their room
    refused = metric(run, "hearth_wyoming_connections_refused_total" if target == "wyoming"
                     else "hearth_http_connections_refused")
    assert refused >= IDLE - cap


def run_cap(run, target: str) -> int:
    from appliance.state.config import WebSettings, WyomingSettings
    return WyomingSettings().max_connections_per_address if target == "wyoming" \
        else WebSettings().max_connections_per_address


def test_1100_idle_connections_to_the_broker(rig):
    """The checkout's broker has no per-address cap: Mosquitto has none, and Debian 12's 2.0.11
    miscounts `max_connections` (fixed upstream in 2.0.12: a closed connection is subtracted twice,
    so after a reload or some churn the cap no longer holds; measured here: 1,015 idle connections
    held, 1,023 of 1,024 files). The appliance's packet filter caps connections per address
    (docs/security.md). What holds here: the broker stays up, every device already connected keeps
    its round trip, /health and pairing over HTTP go on; a new device's broker connection waits
    until Mosquitto drops the silent ones (about 90 s without CONNECT)."""
    run, http, link, clip, tmp = rig
    port = run.broker_port
    broker = next(p for p in psutil.Process(run.proc.pid).children(recursive=True) if "mosquitto" in p.name())
    cap = int(re.search(r"^max_connections (\d+)$", (run.data / "broker" / "mosquitto.conf").read_text(), re.M)[1])
    quiet = round_trips(link, clip, 5)
    quiet_health = health_times(run, 5)
    flood = IdleFlood(port)
    try:
        flood.settle(IDLE - cap)
        attacked = round_trips(link, clip, 5)
        attacked_health = health_times(run, 10)
        broker_fds = broker.num_fds()
        code = requests.get(f"{run.base}/v1/device/code", params={"state": "idle-mqtt", "name": "Newcomer"}, timeout=5)
        try:
            with DeviceLink(pair(run, http, "New-mqtt")) as fresh:
                round_trips(fresh, clip, 1)
                newcomer = "connected and spoke"
        except Exception as exc:            # expected in a checkout while the flood holds the slots
            newcomer = f"refused ({type(exc).__name__})"
        flood.sweep()
    finally:
        flood.close()
    print(f"mqtt: cap {cap}; bystander quiet {statistics.median(quiet) * 1000:.0f} ms, attacked "
          f"{statistics.median(attacked) * 1000:.0f} ms; /health max {max(attacked_health) * 1000:.0f} ms; "
          f"broker fds {broker_fds}; {flood.closed_by_server} refused; a new device: {newcomer}")
    assert statistics.median(attacked) <= 2 * statistics.median(quiet), (quiet, attacked)
    assert max(attacked_health) < 2.0 and code.status_code == 200
    # positive control: the flood was real (Mosquitto accepts through a 100-deep queue, so it trickles in)
    assert broker.is_running() and broker_fds > 256
