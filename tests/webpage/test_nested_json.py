"""JSON nested deeper than Python's parser goes (15,000 `[`) is bad input like any other: 400
`bad_json` over HTTP (it was 500), `bad_json` on the device's error topic over MQTT; and the same
edge still answers a good request right after."""

from __future__ import annotations

import json
import time

import requests

from mqtt import topics
from web_support import admin_password, sign_in

DEEP = b"[" * 15000                     # under the 16 KiB body limit, as the issue sent it


def test_deep_json_to_the_device_api_and_the_page_is_a_400(hearth):
    r = requests.post(f"{hearth.web_url}/v1/device/activate", data=DEEP,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_json", r.text
    http, _ = sign_in(hearth.web_url, admin_password(hearth))
    r = http.post(f"{hearth.web_url}/api/voice", data=DEEP, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_json", r.text
    assert http.get(f"{hearth.web_url}/api/voice", timeout=10).status_code == 200      # still answers


def test_deep_json_over_mqtt_gets_bad_json_on_the_error_topic(hearth, device):
    link = device("deep-json")
    link.publish(topics.stt_start(link.device), DEEP)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        item = link.next(end)
        if item.topic == topics.error(link.device):
            assert json.loads(item.payload)["code"] == "bad_json"
            return
    raise AssertionError("no error for a deeply nested stt/start")
