"""Announce, offers, channels and staged rollout over a real Mosquitto with Hearth's ACL."""

from __future__ import annotations

import json
import queue

import pytest

from firmware_support import free_port, image, make_cache, mosquitto, release_doc
from mqtt import firmware as fw
from mqtt.broker import Account, BrokerConfig, ManagedBroker, hash_password, write_files
from mqtt.client import Connection, Credentials

DEVICES = ("d1", "d2", "d3")


class Device:
    """A simulated device: its own broker login, its type's announce and its own offer."""

    def __init__(self, name: str, creds: Credentials):
        self.name = name
        self.inbox: queue.Queue = queue.Queue()
        self.pending: list[tuple[str, bytes]] = []
        subs = [fw.type_firmware("speaker"), fw.offer(name)]
        self.conn = Connection(creds, lambda t, p: self.inbox.put((t, p)), subs, client_id=name).start()

    def expect(self, topic: str, version: str | None) -> dict | None:
        """Wait for a message on `topic` carrying `version` (None: an empty, cleared offer).

        Messages on other topics are kept for later calls; the one matched and older ones on
        the same topic are consumed."""
        while True:
            for i, (got_topic, payload) in enumerate(self.pending):
                body = json.loads(payload) if payload else None
                if got_topic == topic and (body or {}).get("version") == version:
                    self.pending = [m for j, m in enumerate(self.pending) if j > i or m[0] != topic]
                    return body
            self.pending.append(self.inbox.get(timeout=10))

    def report(self, message) -> None:
        kind = {fw.FirmwareState: fw.state, fw.FirmwareResult: fw.result, fw.FirmwareProgress: fw.progress}
        self.conn.publish(kind[type(message)](self.name), message.to_payload(), 1, isinstance(message, fw.FirmwareState))


@pytest.fixture
def fleet(tmp_path):
    passwords = {name: f"pw-{name}" for name in ("hearth", *DEVICES)}
    accounts = [Account("hearth", hash_password(passwords["hearth"]), "service")]
    accounts += [Account(d, hash_password(passwords[d]), "device", "speaker") for d in DEVICES]
    config = BrokerConfig(directory=tmp_path / "broker", port=free_port())
    write_files(config, accounts)
    broker = ManagedBroker(config, mosquitto())
    broker.start()
    creds = {n: Credentials("127.0.0.1", config.port, n, p) for n, p in passwords.items()}
    holder: dict = {}
    service = Connection(creds["hearth"], lambda t, p: holder["cache"].handle(t, p), fw.SUBSCRIPTIONS)
    cache = make_cache(tmp_path, publish=service.publish, staged_rollout=True)
    holder["cache"] = cache
    service.start()
    devices = {d: Device(d, creds[d]) for d in DEVICES}
    yield cache, devices, tmp_path
    for device in devices.values():
        device.conn.stop()
    service.stop()
    cache.stop()
    broker.stop()


def import_release(cache, folder, version: str, channel: str = "stable", seed: int = 1):
    folder.mkdir(exist_ok=True)
    data = image(32 << 10, seed)
    (folder / f"{version}.bin").write_bytes(data)
    (folder / f"{version}.json").write_text(json.dumps(release_doc("speaker", version, data, f"{version}.bin", channel)))
    outcomes = cache.import_dir(folder)
    assert all(o.state == "cached" for o in outcomes), outcomes
    for path in folder.iterdir():
        path.unlink()


def test_staged_rollout_canary_pause_resume_and_beta(fleet):
    cache, devices, tmp = fleet
    d1, d2, d3 = devices.values()
    for d in devices.values():
        d.report(fw.FirmwareState(device_type="speaker", version="0.9"))
        d.expect(fw.offer(d.name), None)          # registered; nothing to offer yet

    import_release(cache, tmp / "usb", "1.0")
    assert d1.expect(fw.offer("d1"), "1.0")["rollout"] == "canary"
    assert cache.status()["rollouts"][0]["state"] == "canary"

    d1.report(fw.FirmwareProgress(version="1.0", state="downloading", bytes=10, total=20))
    d1.report(fw.FirmwareResult(version="1.0", ok=True))
    for d in (d2, d3):                             # the canary succeeded: everyone is offered 1.0
        assert d.expect(fw.offer(d.name), "1.0")["rollout"] == "all"
    announce = d2.expect(fw.type_firmware("speaker"), "1.0")   # readable by a device under the ACL
    assert announce["sha256"] and announce["md5"] and announce["url"].startswith("/firmware/")

    import_release(cache, tmp / "usb", "1.1", seed=2)
    d1.expect(fw.offer("d1"), "1.1")
    d1.report(fw.FirmwareResult(version="1.1", ok=False, error="boot loop", running="1.0"))
    d1.expect(fw.offer("d1"), "1.0")               # paused: even the canary is offered 1.0 again
    [rollout] = [r for r in cache.status()["rollouts"] if r["version"] == "1.1"]
    assert rollout["state"] == "paused" and "d1: boot loop" in rollout["error"]
    assert cache.registry.device("d1")["version"] == "1.0"
    assert cache.rollout.offer_for("d2").version == "1.0"

    cache.resume_rollout("speaker")
    d2.expect(fw.offer("d2"), "1.1")
    d3.expect(fw.type_firmware("speaker"), "1.1")

    cache.set_channel("d3", "beta")
    import_release(cache, tmp / "usb", "2.0-beta", channel="beta", seed=3)
    assert d3.expect(fw.offer("d3"), "2.0-beta")["channel"] == "beta"
    assert cache.rollout.offer_for("d2").version == "1.1"
    assert cache.rollout.released("speaker", "stable").version == "1.1"


def test_a_bad_report_gets_an_error_on_the_device_topic(fleet):
    cache, devices, _ = fleet
    d1 = devices["d1"]
    d1.conn.subscribe("hearth/d1/error")
    d1.conn.publish(fw.result("d1"), b'{"v":1,"ok":true}', 1, False)   # no version
    while True:
        topic, payload = d1.inbox.get(timeout=10)
        if topic == "hearth/d1/error":
            break
    assert json.loads(payload)["code"] == "bad_message" and "version" in json.loads(payload)["message"]
