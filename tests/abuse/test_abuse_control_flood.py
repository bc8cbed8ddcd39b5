"""A device floods its own control topics at QoS 1 (garbage `tts/say`, `stt/start`, `stt/end`)
while another device is speaking: the bystander's final arrives, every flood message reaches the
service (each is answered with its own error), and the broker drops only what was bound for the
flooder (those error replies), never the service's or the bystander's messages. Before the service
read its topics at QoS 0 (appliance/service.py), Mosquitto logged "Outgoing messages are being
dropped for client hearth" in this test. Real Mosquitto, loopback only, the flood bounded."""

from __future__ import annotations

import pytest

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from appliance.commands import client
from conftest import word_error_rate
from mqtt import topics
from voices import in_room, quiet, say, to_wav

pytestmark = [pytest.mark.realtime, pytest.mark.timing]

FLOOD = 12000
TEXT = "turn on the kitchen light"


def _errors(hearth) -> float:
    return hearth.service.metrics.counters["hearth_errors_total"]


def _attacker(hearth, name: str, told: list):
    """A raw paho client on a device login that queues without limit (DeviceLink keeps 10,000)."""
    creds = hearth.credentials(name)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
    c.username_pw_set(creds.username, creds.password)
    c.max_queued_messages_set(0)
    c.on_message = lambda _c, _u, msg: told.append(msg.topic)
    c.on_connect = lambda cl, *_: cl.subscribe(topics.error(name), qos=0)
    c.connect("127.0.0.1", creds.port)
    c.loop_start()
    return c


def test_a_control_message_flood_costs_a_bystander_nothing(hearth, device):
    told: list[str] = []
    flooder = _attacker(hearth, "control-flooder", told)
    bystander = device("control-bystander")
    clip = to_wav(in_room([quiet(0.3), say(hearth, "espeak", TEXT), quiet(0.6)], seed=21))
    dropped_before = [line for line in hearth.drop_lines() if "control-flooder" not in line]
    errors_before = _errors(hearth)
    out: dict = {}
    heard = threading.Thread(target=lambda: out.__setitem__(
        "heard", client.transcribe(bystander, clip, realtime=True, timeout=60)))
    try:
        deadline = time.monotonic() + 10
        while not flooder.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        heard.start()
        time.sleep(0.3)                               # the bystander is mid-utterance when the flood starts
        kinds = [topics.tts_say("control-flooder"), topics.stt_start("control-flooder"),
                 topics.stt_end("control-flooder")]
        t0 = time.monotonic()
        for i in range(FLOOD):
            flooder.publish(kinds[i % len(kinds)], b"{not json", qos=1)
        assert time.monotonic() - t0 < 10
        heard.join(60)
        assert word_error_rate(TEXT, out["heard"].final.text) <= 0.2, out["heard"].final.text
        # every flood message reached the service: each is an error of its own (bad JSON), none lost
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _errors(hearth) - errors_before < FLOOD:
            time.sleep(0.1)
        assert _errors(hearth) - errors_before == FLOOD
        assert told                                   # and the flooder was told (some of it)
    finally:
        flooder.loop_stop()
        flooder.disconnect()
    # nothing bound for the service or the bystander was dropped (the flooder's own replies may be)
    dropped = [line for line in hearth.drop_lines() if "control-flooder" not in line]
    assert dropped == dropped_before, dropped
    assert hearth.overflow_a_subscriber("control-sink")  # control: an overflow is logged and read here
