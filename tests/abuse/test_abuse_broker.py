"""A LAN attacker against the broker: taking over another login's client id, and filling the data
disk with wrong-password connects. Real Mosquitto, loopback only, every loop bounded."""

from __future__ import annotations

import pytest

import socket
import struct
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from appliance.compat import hermes_account
from mqtt import topics
from mqtt.broker import SERVICE_USER
from mqtt.broker_log import BrokerLines, file_sink
from mqtt.messages import Error, SttEnd

pytestmark = pytest.mark.timing

WINDOW_S = 3.0


def round_trip(link, timeout: float = 5.0) -> float:
    """stt/end for a session that does not exist: the service answers on the device's error topic."""
    session = uuid.uuid4().hex[:10]
    t0 = time.monotonic()
    link.publish(topics.stt_end(link.device), SttEnd(session=session).to_payload())
    deadline = t0 + timeout
    while True:
        item = link.next(deadline)
        if item.topic == topics.error(link.device) and Error.from_payload(item.payload).ref == session:
            return item.at - t0


class Disconnects:
    """Counts every disconnect of paho clients (the service's included) while it is installed."""

    def __init__(self):
        self.count: dict[str, int] = {}
        self._restore = []

    def watch(self, name: str, client: paho.Client) -> None:
        self.count[name] = 0
        original = client.on_disconnect

        def counted(*args):
            self.count[name] += 1
            if original:
                original(*args)

        client.on_disconnect = counted
        self._restore.append((client, original))

    def close(self) -> None:
        for client, original in self._restore:
            client.on_disconnect = original


def attackers(port: int, username: str, password: str, client_ids: list[str]) -> tuple[list[paho.Client], list[int]]:
    """One reconnecting connection per stolen client id; `accepted` counts successful CONNACKs."""
    accepted = [0]
    clients = []
    for cid in client_ids:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv311)
        c.username_pw_set(username, password)
        c.reconnect_delay_set(0.05, 0.2)
        c.on_connect = lambda cl, ud, fl, rc, pr: accepted.__setitem__(0, accepted[0] + (0 if rc.is_failure else 1))
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        clients.append(c)
    return clients, accepted


def hold_window(links, seconds: float) -> list[float]:
    """Round trips for every link, back to back, for `seconds`: each one must be answered."""
    rtts = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for link in links:
            rtts.append(round_trip(link))
        time.sleep(0.1)
    return rtts


def test_a_device_login_cannot_take_over_the_service_or_another_device(hearth, device):
    victim = device("abuse-victim")
    bystander = device("abuse-bystander")
    creds = hearth.credentials("abuse-attacker")
    victim_id = victim.conn.client._client_id.decode()
    stolen = ["hearth-service", SERVICE_USER, "abuse-victim", victim_id, "abuse-bystander"]
    watch = Disconnects()
    watch.watch("service", hearth.service.conn.client)
    watch.watch("victim", victim.conn.client)
    watch.watch("bystander", bystander.conn.client)
    clients, accepted = attackers(hearth.settings.broker.port, creds.username, creds.password, stolen)
    for i, c in enumerate(clients):
        watch.watch(f"attacker-{i}", c)
    try:
        rtts = hold_window([victim, bystander], WINDOW_S)
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        watch.close()
    # the attack was real: the broker let the attacker in, and its connections (now all named
    # after its own login) took each other over, which is what would have hit the service
    assert accepted[0] >= len(stolen), accepted
    assert sum(v for k, v in watch.count.items() if k.startswith("attacker")) >= 1, watch.count
    # ... and nobody else was touched
    assert watch.count["service"] == 0 and watch.count["victim"] == 0 and watch.count["bystander"] == 0, watch.count
    assert hearth.service.conn.connected.is_set() and victim.conn.connected.is_set()
    assert len(rtts) >= 2 * int(WINDOW_S / 1.0) and max(rtts) < 2.0, rtts
    assert round_trip(victim) < 2.0


def test_the_hermes_login_cannot_take_over_the_service(compat_hearth):
    """Hermes satellites share one login and open several connections, so client ids stay theirs
    to choose on a Hermes broker; the service's own id is random and cannot be guessed."""
    link = compat_hearth.device("abuse-hermes-victim")
    login = hermes_account.ensure_login(compat_hearth.settings.data_dir)
    service_id = compat_hearth.service.conn.client._client_id.decode()
    assert service_id not in ("hearth-service", SERVICE_USER) and len(service_id) >= 24
    stolen = ["hearth-service", SERVICE_USER, "hearth-service"]     # the last one takes over the first
    watch = Disconnects()
    watch.watch("service", compat_hearth.service.conn.client)
    clients, accepted = attackers(compat_hearth.settings.broker.port, login.username, login.password, stolen)
    for i, c in enumerate(clients):
        watch.watch(f"attacker-{i}", c)
    try:
        rtts = hold_window([link], WINDOW_S)
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        watch.close()
    assert accepted[0] >= len(stolen)
    assert watch.count["attacker-0"] + watch.count["attacker-2"] >= 1, watch.count   # takeovers do happen here
    assert watch.count["service"] == 0, watch.count
    assert compat_hearth.service.conn.connected.is_set()
    assert rtts and max(rtts) < 2.0, rtts


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("!H", len(raw)) + raw
    body = s("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10) + s(client_id) + s(username) + s(password)
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def test_wrong_password_connects_do_not_fill_the_data_directory(hearth, device):
    data = hearth.settings.data_dir
    logs = lambda: sum(p.stat().st_size for p in (data / "broker").glob("mosquitto.log*"))   # noqa: E731
    link = device("abuse-disk")
    before, log_before, chatter_before = disk_bytes(data), logs(), hearth.broker.lines.chatter
    refused = 0
    deadline = time.monotonic() + 60
    for i in range(1000):
        assert time.monotonic() < deadline, f"only {i} connects in 60 s"
        with socket.create_connection(("127.0.0.1", hearth.settings.broker.port), timeout=5) as sock:
            sock.sendall(connect_packet(f"guess-{i}", SERVICE_USER, f"wrong-{i}"))
            answer = sock.recv(4)
        refused += answer == b"\x20\x02\x00\x05"         # CONNACK: not authorised
    # the broker saw and refused every one (its connection lines reach Hearth's parser, a moment later) ...
    assert refused == 1000
    settle = time.monotonic() + 10
    while hearth.broker.lines.chatter - chatter_before < 2000 and time.monotonic() < settle:
        time.sleep(0.05)
    assert hearth.broker.lines.chatter - chatter_before >= 2000
    grown, log_grown = disk_bytes(data) - before, logs() - log_before
    # ... and none of it reached the disk
    assert grown < 1_000_000, grown
    assert log_grown < 4096, log_grown
    assert round_trip(link) < 2.0         # and the service still answers


def test_the_broker_log_file_is_capped(tmp_path):
    """Lines that are not connection chatter (errors under some other flood) still cannot fill the disk."""
    lines = BrokerLines(tmp_path / "transports.json", file_sink(tmp_path / "mosquitto.log", max_bytes=64_000, backups=2))
    line = "2026-01-01T00:00:00: Error: something the attacker can trigger " + "x" * 60
    for _ in range(20_000):                       # 2.5 MB of error lines
        lines.feed(line + "\n")
    files = list(tmp_path.glob("mosquitto.log*"))
    assert len(files) == 3
    assert sum(p.stat().st_size for p in files) <= 3 * 64_000 + len(line) * 3
    assert line in (tmp_path / "mosquitto.log").read_text()
