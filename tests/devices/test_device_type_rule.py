"""One rule for device-type names (mqtt/device_type.py): pairing, the firmware cache, the MQTT
messages and the docs agree, so every type the firmware cache serves can be paired."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.devices.errors import BadSetting
from appliance.devices.manager import Devices
from appliance.state.store import Store
from conftest import make_settings
from firmware_cache.errors import BadDeviceType
from firmware_support import make_cache
from mqtt import device_type, firmware as fw
from mqtt.messages import ProtocolError

DOCS = Path(__file__).resolve().parents[2] / "docs"
GOOD = ["satellite", "mycroft", "Speaker-S3", "esp32.box_v2", "a", "x" * 64]
BAD = ["", "-lead", ".hidden", "a b", "a/b", "a+", "a#", "x" * 65, "ümlaut"]


def test_the_rule():
    assert all(device_type.is_valid(name) for name in GOOD)
    assert not any(device_type.is_valid(name) for name in BAD)
    with pytest.raises(device_type.BadDeviceType, match=device_type.RULE):
        device_type.check("a/b")


def test_every_type_the_firmware_cache_takes_can_be_paired_and_vice_versa(tmp_path):
    settings = make_settings(tmp_path)
    devices = Devices(Store(tmp_path / "hearth.db"), settings)
    cache = make_cache(tmp_path)
    try:
        for n, name in enumerate(GOOD):
            devices.request_code(f"s{n}", f"10.0.0.{n}", name)
            cache.add_type(name)
        for n, name in enumerate(BAD):
            with pytest.raises(BadSetting, match=device_type.RULE):
                devices.request_code(f"b{n}", f"10.0.1.{n}", name)
            with pytest.raises(BadDeviceType, match=device_type.RULE):
                cache.add_type(name)
    finally:
        cache.stop()


def test_a_device_reporting_a_bad_type_gets_an_error():
    assert fw.FirmwareState.from_payload(b'{"v": 1, "device_type": "esp32.box", "version": "1"}').device_type == "esp32.box"
    with pytest.raises(ProtocolError, match=device_type.RULE):
        fw.FirmwareState.from_payload(b'{"v": 1, "device_type": "a/#", "version": "1"}')


def test_the_docs_state_the_one_rule():
    for doc in ("devices.md", "firmware.md", "protocol.md"):
        assert device_type.RULE in (DOCS / doc).read_text(), doc
