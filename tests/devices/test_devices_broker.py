"""Each device is its own broker login, confined by the ACL. Tested by what arrives, not by acks
(a refused subscription still gets a success SUBACK and then receives nothing)."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.commands import client
from appliance.commands.client import DeviceLink
from mqtt import devices as wire
from mqtt import topics
from mqtt.client import Connection, Credentials, MqttError
from mqtt.messages import SttEnd, SttStart, TtsSay
from devices_kit import pair_device

COMMAND = "Set a timer for five minutes."


class Sniffer:
    """A connection that records everything it receives."""

    def __init__(self, creds: Credentials, subscriptions, will=None):
        self.got: list[tuple[str, bytes]] = []
        self.conn = Connection(creds, lambda t, p: self.got.append((t, p)), subscriptions,
                               client_id=f"sniff-{uuid.uuid4().hex[:6]}", will=will)

    def __enter__(self):
        self.conn.start()
        return self

    def __exit__(self, *exc):
        self.conn.stop()

    def topics(self, prefix: str = "") -> list[str]:
        return [t for t, _ in self.got if t.startswith(prefix)]


def replies(spy: "Sniffer") -> list[str]:
    """What a request made for the device would cause: transcripts, speech, errors, broadcasts
    (not its retained settings or firmware offer, which arrive on their own)."""
    return [t for t in spy.topics() if any(part in t for part in ("/stt/", "/tts/", "/error", "/broadcast/"))]


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_cannot_receive_b_transcripts(hearth, speech):
    a, b = pair_device(hearth, "A"), pair_device(hearth, "B")
    with Sniffer(a.credentials, [topics.device(b.id, "#"), "#", "hearth/+/stt/final"]) as spy, \
            DeviceLink(b.credentials) as link_b:
        time.sleep(0.3)
        heard = client.transcribe(link_b, speech(COMMAND))
        assert "timer" in heard.final.text.lower()              # B got its transcript
        time.sleep(0.5)
        assert spy.topics(f"hearth/{b.id}/") == []               # A got nothing of B's...
        assert all(t.startswith((f"hearth/{a.id}/", "hearth/server/")) for t in spy.topics()), spy.topics()
        assert topics.server_info() in spy.topics()              # ...while its "#" did deliver what A may read


def test_a_cannot_publish_into_b_session(hearth, speech):
    a, b = pair_device(hearth, "A"), pair_device(hearth, "B")
    wav = speech(COMMAND)
    with DeviceLink(a.credentials) as link_a, Sniffer(b.credentials, [topics.device(b.id, "#")]) as spy_b:
        time.sleep(0.3)
        session = "intruder-1"
        link_a.publish(topics.stt_start(b.id), SttStart(session=session).to_payload())
        link_a.publish(topics.stt_audio(b.id, session), wav.pcm[:32000], qos=0)
        link_a.publish(topics.stt_end(b.id), SttEnd(session=session).to_payload())
        link_a.publish(topics.tts_say(b.id), TtsSay(request="intruder-2", text="Hello B").to_payload())
        time.sleep(2.0)
        assert replies(spy_b) == []
        assert (b.id, session) not in hearth.service.sessions.sessions
        # the same request from B itself, on the very connection that heard nothing, is answered
        # (one connection per login: a second one would replace the spy, so the spy asks)
        spy_b.conn.publish(topics.tts_say(b.id), TtsSay(request="from-b", text="Hello B").to_payload())
        assert wait_for(lambda: topics.tts_end(b.id) in spy_b.topics(), timeout=30)


def test_revoked_device_is_disconnected_and_cannot_connect(hearth):
    dev = pair_device(hearth, "Soon gone")
    with Sniffer(dev.credentials, [topics.device(dev.id, "#")]) as spy:
        assert wait_for(lambda: wire.settings(dev.id) in spy.topics())
        hearth.service.devices.revoke(dev.id)
        assert wait_for(lambda: not spy.conn.connected.is_set()), "the broker kept the revoked session"
        hearth.service._publish(topics.error(dev.id), b'{"probe":1}', 1, False)
        time.sleep(1.0)
        assert not spy.conn.connected.is_set()                   # its reconnects are refused
        assert topics.error(dev.id) not in spy.topics()
    with pytest.raises(MqttError):
        Connection(dev.credentials, lambda t, p: None, client_id="revoked-again").start(wait=3)


def test_anonymous_and_wrong_password_reach_nothing(hearth):
    port = hearth.settings.broker.port
    dev = pair_device(hearth, "Listener")
    results = {}

    def attempt(name, username, password):
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"anon-{name}")
        if username is not None:
            c.username_pw_set(username, password)
        c.on_connect = lambda cl, ud, fl, rc, pr: results.__setitem__(name, rc)
        c.connect("127.0.0.1", port)
        c.loop_start()
        c.subscribe("#")
        c.publish(topics.tts_say(dev.id), TtsSay(request="anon", text="hello").to_payload())
        c.publish("hearth/broadcast/anon", b"x")
        time.sleep(1.0)
        c.loop_stop()
        c.disconnect()

    with Sniffer(dev.credentials, [topics.device(dev.id, "#"), "hearth/broadcast/#"]) as spy:
        time.sleep(0.3)
        attempt("anonymous", None, None)
        attempt("wrong", dev.id, "not-the-password")
        assert all(rc.is_failure for rc in results.values()), results
        assert replies(spy) == []
        hearth.service._publish(topics.error(dev.id), b'{"probe": 1}', 1, False)    # positive control:
        assert wait_for(lambda: topics.error(dev.id) in spy.topics())             # the spy was listening


def test_type_and_broadcast_topics_are_read_only(hearth):
    sat1 = pair_device(hearth, "Sat 1", device_type="satellite")
    sat2 = pair_device(hearth, "Sat 2", device_type="satellite")
    other = pair_device(hearth, "Panel", device_type="panel")
    subs = ["hearth/type/satellite/#", "hearth/type/panel/#", "hearth/broadcast/#"]
    with Sniffer(sat1.credentials, subs) as s1, Sniffer(sat2.credentials, subs) as s2, \
            Sniffer(other.credentials, subs) as s3:
        time.sleep(0.3)                                     # let the subscriptions settle
        hearth.service._publish("hearth/type/satellite/announce", b"for satellites", 1, False)
        hearth.service._publish("hearth/broadcast/announce", b"for all", 1, False)
        assert wait_for(lambda: len(s1.got) == 2 and len(s2.got) == 2 and len(s3.got) == 1)
        assert s3.topics() == ["hearth/broadcast/announce"]
        s1.conn.publish("hearth/type/satellite/forged", b"from a device")
        s1.conn.publish("hearth/broadcast/forged", b"from a device")
        time.sleep(1.0)
        assert "hearth/type/satellite/forged" not in s2.topics()
        assert "hearth/broadcast/forged" not in s2.topics() + s3.topics()


def test_settings_arrive_on_connect_on_change_and_on_request(hearth):
    dev = pair_device(hearth, "Bedroom")
    devices = hearth.service.devices

    def settings_seen(spy):
        return [json.loads(p) for t, p in spy.got if t == wire.settings(dev.id) and p]

    with Sniffer(dev.credentials, [topics.device(dev.id, "#")]) as spy:
        assert wait_for(lambda: settings_seen(spy))                  # retained: there on connect
        first = settings_seen(spy)[0]
        assert first["type"] == "device-settings" and first["name"] == "Bedroom"
        devices.update_settings(dev.id, time_format="12h")
        assert wait_for(lambda: len(settings_seen(spy)) == 2)
        assert settings_seen(spy)[-1]["time_format"] == "12h"
        devices.rename(dev.id, "Guest room")
        assert wait_for(lambda: settings_seen(spy)[-1]["name"] == "Guest room")
        count = len(settings_seen(spy))
        spy.conn.publish(wire.settings_get(dev.id), wire.SettingsGet().to_payload())
        assert wait_for(lambda: len(settings_seen(spy)) == count + 1)


def test_presence_from_status_and_last_will(hearth):
    dev = pair_device(hearth, "Porch")
    devices = hearth.service.devices
    offline = wire.DeviceStatus(online=False).to_payload()
    spy = Sniffer(dev.credentials, [], will=(wire.status(dev.id), offline, 1, True)).__enter__()
    spy.conn.publish(wire.status(dev.id), wire.DeviceStatus(online=True, firmware="3.0", platform="esp32-s3").to_payload(),
                     1, True)
    assert wait_for(lambda: devices.get(dev.id).online)
    assert wait_for(lambda: devices.get(dev.id).transport == "plain")     # from the broker's log, which may lag
    d = devices.get(dev.id)
    assert (d.firmware, d.platform, d.transport) == ("3.0", "esp32-s3", "plain")
    # power loss: the socket dies without a DISCONNECT, the broker publishes the last will
    spy.conn.client.loop_stop()
    spy.conn.client.socket().close()
    assert wait_for(lambda: not devices.get(dev.id).online), "the last will did not mark the device offline"
