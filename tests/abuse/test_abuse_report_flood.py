"""A device floods valid firmware reports at QoS 1 (60,000 once delayed another device's finals up
to 15.8 s and made Mosquitto drop messages bound for the service, while each report was a database
write on the network thread). Now: the bystander's round trip stays within 2x quiet, the broker
drops nothing bound for the service, every report reached the service, and the flooder's newest
report is what the firmware page shows. Real Mosquitto, loopback only, the flood bounded."""

from __future__ import annotations

import pytest

import statistics
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from appliance.commands import client
from conftest import word_error_rate
from mqtt import firmware as fw
from voices import in_room, quiet, say, to_wav

pytestmark = [pytest.mark.realtime, pytest.mark.timing]

FLOOD = 20000
TEXT = "turn on the kitchen light"
TAIL_S = 0.6                     # the clip's silence after speech: the clock starts at the end of speech


def _flooder(hearth, name: str):
    creds = hearth.credentials(name)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
    c.username_pw_set(creds.username, creds.password)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", creds.port)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    return c


def _round_trip(link, clip) -> float:
    heard = client.transcribe(link, clip, realtime=True, timeout=60)
    assert word_error_rate(TEXT, heard.final.text) <= 0.2, heard.final.text
    return heard.latency_s + TAIL_S


def _drops(hearth) -> list[str]:
    return [line for line in hearth.broker_log().splitlines() if "being dropped" in line and "report-flooder" not in line]


def test_a_firmware_report_flood_costs_a_bystander_nothing(hearth, device):
    bystander = device("report-bystander")
    clip = to_wav(in_room([quiet(0.3), say(hearth, "espeak", TEXT), quiet(TAIL_S)], seed=23))
    _round_trip(bystander, clip)                                       # warm-up
    quiet_s = [_round_trip(bystander, clip) for _ in range(3)]
    drops_before = _drops(hearth)
    got_before = hearth.service.metrics.counters.get("hearth_mqtt_messages_total", 0)
    flooder = _flooder(hearth, "report-flooder")
    topic = fw.progress("report-flooder")

    def flood():
        for i in range(FLOOD):
            flooder.publish(topic, fw.FirmwareProgress(version="2.0", state="downloading", bytes=i,
                                                        total=FLOOD).to_payload(), qos=1)
        flooder.publish(topic, fw.FirmwareProgress(version="2.0", state="installing", bytes=FLOOD,
                                                    total=FLOOD).to_payload(), qos=1)

    attacker = threading.Thread(target=flood)
    try:
        attacker.start()
        attacked_s = [_round_trip(bystander, clip) for _ in range(3)]
        attacker.join(120)
        deadline = time.monotonic() + 60
        while (time.monotonic() < deadline
               and hearth.service.metrics.counters.get("hearth_mqtt_messages_total", 0) - got_before < FLOOD + 1):
            time.sleep(0.1)
    finally:
        flooder.loop_stop()
        flooder.disconnect()
    got = hearth.service.metrics.counters.get("hearth_mqtt_messages_total", 0) - got_before
    print(f"bystander quiet {statistics.median(quiet_s) * 1000:.0f} ms, during {FLOOD} reports "
          f"{statistics.median(attacked_s) * 1000:.0f} ms; the service read {got:.0f} messages")
    assert got >= FLOOD + 1                                            # positive control: every report arrived
    assert statistics.median(attacked_s) <= 2 * statistics.median(quiet_s), (quiet_s, attacked_s)
    assert _drops(hearth) == drops_before, _drops(hearth)
    deadline = time.monotonic() + 5
    row = None
    while time.monotonic() < deadline:
        row = hearth.service.firmware.registry.device("report-flooder")
        if row and row.get("state") == "installing":
            break
        time.sleep(0.1)
    assert row and row["state"] == "installing" and row["progress"] == 100, row   # its newest report, not a stale one
