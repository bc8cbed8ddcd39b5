"""The registry and pairing through service.devices: a person confirms, codes expire and are
single use, settings override the household's, bad input changes nothing."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from appliance.devices.errors import (BadCode, BadSetting, BadToken, NotConfirmed, RateLimited, TooManyPending,
                                      UnknownDevice)
from appliance.devices.manager import Devices
from appliance.devices.pairing import ALPHABET
from appliance.state.store import Store
from conftest import make_settings
from devices_kit import pair_device


def rows(hearth, table: str) -> int:
    return hearth.service.store.db[table].count


def test_pairing_needs_a_person_and_gives_a_login_once(hearth):
    devices = hearth.service.devices
    code, token = devices.request_code("state-1", "10.0.0.7", "satellite", platform="esp32", name="Hall")
    assert len(code) == 6 and set(code) <= set(ALPHABET)
    assert code in [p.code for p in devices.pending()]
    with pytest.raises(NotConfirmed):
        devices.activate("state-1", token, "10.0.0.7")
    device = devices.confirm(code.lower(), room="hall")     # people type lower case
    assert device.name == "Hall" and device.room == "hall" and device.state == "waiting"
    assert code not in [p.code for p in devices.pending()]
    done = devices.activate("state-1", token, "10.0.0.7", firmware="2.1")
    assert done.device.id == device.id and done.device.state == "active" and done.device.firmware == "2.1"
    assert done.mqtt_password and done.tokens.access and done.tokens.refresh
    assert device.id in [a.username for a in devices.accounts()]
    with pytest.raises(BadCode, match="already collected"):            # a replayed activation
        devices.activate("state-1", token, "10.0.0.7")
    with pytest.raises(BadCode, match="already used"):                  # a reused code
        devices.confirm(code)


def test_wrong_codes_tokens_and_states_store_nothing(hearth):
    devices = hearth.service.devices
    before = rows(hearth, "devices_devices")
    with pytest.raises(BadCode):
        devices.confirm("AAAAAA")
    with pytest.raises(BadCode):
        devices.confirm("not a code at all")
    code, token = devices.request_code("s", "10.0.0.8")
    with pytest.raises(BadToken):
        devices.activate("s", "forged-token", "10.0.0.8")
    with pytest.raises(BadToken):
        devices.activate("other-state", token, "10.0.0.8")
    assert rows(hearth, "devices_devices") == before


def test_codes_expire(tmp_path):
    settings = make_settings(tmp_path, devices={"code_ttl_s": 1})
    store = Store(tmp_path / "hearth.db")
    devices = Devices(store, settings)
    code, token = devices.request_code("s", "10.0.0.9")
    time.sleep(1.1)
    assert devices.pending() == []
    with pytest.raises(BadCode, match="expired"):
        devices.confirm(code)
    with pytest.raises(BadCode, match="expired"):
        devices.activate("s", token, "10.0.0.9")
    assert devices.list() == []
    store.close()


@pytest.mark.timing
def test_a_repeated_request_keeps_its_first_expiry(tmp_path):
    """Asking again replaces the waiting request but never pushes its expiry back: one request per
    address every few minutes must not hold a place in the list for ever."""
    settings = make_settings(tmp_path, devices={"code_ttl_s": 2})
    store = Store(tmp_path / "hearth.db")
    devices = Devices(store, settings)
    devices.request_code("s", "10.0.0.9", "satellite", "", "Kitchen")
    first = devices.pending()[0]
    time.sleep(1.2)
    devices.request_code("s", "10.0.0.9", "satellite", "", "Kitchen")          # the same request again
    again = devices.pending()
    assert len(again) == 1 and again[0].asked == 2
    assert again[0].expires == first.expires and again[0].created == first.created
    time.sleep(first.expires - time.time() + 0.1)
    assert devices.pending() == []                                            # gone at the first expiry
    devices.request_code("s", "10.0.0.9", "satellite", "", "Kitchen")          # after it: a fresh request
    assert devices.pending()[0].expires > first.expires
    store.close()


def test_a_full_list_gives_a_quieter_address_the_busiest_addresses_newest_place(tmp_path):
    settings = make_settings(tmp_path, devices={"max_pending": 20, "max_pending_per_address": 3,
                                                "code_rate_per_min": 1000})
    store = Store(tmp_path / "hearth.db")
    devices = Devices(store, settings)
    for a in range(7):                                   # 7 addresses, 3 requests each: 20 fit, the 21st not
        for n in range(3):
            try:
                devices.request_code(f"s-{a}-{n}", f"10.0.1.{a}", "satellite", "", f"Fill {a}.{n}")
            except TooManyPending:
                assert (a, n) == (6, 2)
    assert len(devices.pending()) == 20
    devices.request_code("real", "10.0.2.1", "satellite", "", "Real speaker")      # a new address gets in
    waiting = devices.pending()
    assert len(waiting) == 20 and any(p.name == "Real speaker" for p in waiting)
    assert max(Counter(p.client_addr for p in waiting).values()) == 3
    with pytest.raises(TooManyPending):                  # an address as busy as the rest takes nobody's place
        devices.request_code("more", "10.0.1.0", "satellite", "", "Fill 0.9")
    store.close()


def test_code_requests_are_rate_limited_per_client(tmp_path):
    settings = make_settings(tmp_path, devices={"code_rate_per_min": 3})
    store = Store(tmp_path / "hearth.db")
    devices = Devices(store, settings)
    for _ in range(3):
        devices.request_code("s", "10.0.0.10")
    with pytest.raises(RateLimited):
        devices.request_code("s", "10.0.0.10")
    devices.request_code("s", "10.0.0.11")                  # another client is not held back
    store.close()


def test_settings_override_household_defaults(hearth):
    devices = hearth.service.devices
    paired = pair_device(hearth, "Den")
    household = devices.household()
    assert devices.settings(paired.id) == household
    loc = {"name": "Oslo", "latitude": 59.91, "longitude": 10.75, "timezone": "Europe/Oslo"}
    s = devices.update_settings(paired.id, units="imperial", time_format="12h", location=loc, language="nb")
    assert s["units"] == "imperial" and s["time_format"] == "12h" and s["location"] == loc and s["language"] == "nb"
    assert s["voice"] == household["voice"]
    assert devices.overrides(paired.id) == {"units": "imperial", "time_format": "12h", "location": loc, "language": "nb"}
    s = devices.update_settings(paired.id, units=None)       # None clears an override
    assert s["units"] == household["units"]


@pytest.mark.parametrize("values, message", [
    ({"units": "furlongs"}, "metric or imperial"),
    ({"time_format": "25h"}, "12h or 24h"),
    ({"voice": "nobody"}, "unknown voice"),
    ({"language": "English please"}, "language code"),
    ({"location": {"latitude": 123, "longitude": 0}}, "latitude"),
    ({"colour": "blue"}, "unknown setting"),
    ({"units": "imperial", "voice": "nobody"}, "unknown voice"),     # all or nothing
])
def test_bad_settings_are_refused_and_change_nothing(hearth, values, message):
    devices = hearth.service.devices
    paired = pair_device(hearth)
    with pytest.raises(BadSetting, match=message):
        devices.update_settings(paired.id, **values)
    assert devices.overrides(paired.id) == {}


def test_rename_move_revoke(hearth):
    devices = hearth.service.devices
    paired = pair_device(hearth, "Old name")
    assert devices.rename(paired.id, "  Kitchen   speaker ").name == "Kitchen speaker"
    assert devices.move(paired.id, "kitchen").room == "kitchen"
    assert devices.find(paired.id[:6]).id == paired.id
    with pytest.raises(BadSetting):
        devices.rename(paired.id, "")
    revoked = devices.revoke(paired.id)
    assert revoked.state == "revoked"
    assert paired.id not in [d.id for d in devices.list()]
    assert paired.id not in [a.username for a in devices.accounts()]
    with pytest.raises(UnknownDevice):
        devices.get(paired.id)
    with pytest.raises(BadToken):
        devices.tokens.device_for(paired.access)
    with pytest.raises(UnknownDevice):
        devices.rename("nosuchdevice", "x")


def test_refresh_rotates_and_refuses_replays(hearth):
    tokens = hearth.service.devices.tokens
    paired = pair_device(hearth)
    assert tokens.device_for(paired.access) == paired.id
    new = tokens.refresh(paired.refresh)
    assert tokens.device_for(new.access) == paired.id
    with pytest.raises(BadToken, match="already used"):
        tokens.refresh(paired.refresh)
    with pytest.raises(BadToken):
        tokens.device_for(paired.access)           # the old pair died with the refresh
    with pytest.raises(BadToken):
        tokens.device_for("x" * 43)


def test_a_paired_device_follows_its_types_firmware_at_once(hearth):
    """Pairing tells the firmware cache the device and its type, before its first firmware report."""
    from devices_kit import pair_device
    paired = pair_device(hearth, "Porch speaker", device_type="porch-puck")
    row = hearth.service.firmware.registry.device(paired.device.id)
    assert row is not None and row["device_type"] == "porch-puck"
