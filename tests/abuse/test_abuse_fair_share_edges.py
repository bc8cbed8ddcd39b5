"""Fair shares on the other edges: 20 Wyoming clients from one address flooding transcribe with
29 s of audio each, and a Mycroft `/v1/stt` upload flood from one paired device, leave MQTT
device B's transcript round trip within 2x of its quiet value (measured in the same test), and
the flooders get the documented errors (Wyoming `error` events, HTTP 429 `too_fast`)."""

from __future__ import annotations

import pytest

from fair_share_kit import fair  # noqa: F401  (the module's own Hearth)

pytestmark = [pytest.mark.own_hearth, pytest.mark.realtime, pytest.mark.timing]


def test_twenty_wyoming_clients_from_one_address_are_one_client(fair):
    out = fair.scenario("wyoming-flood")
    fair.check_b(out)
    told = out.attacker["errors"]
    assert told.get("too_fast", 0) + told.get("too_many_sessions", 0) >= 20, out.attacker
    assert out.attacker["utterances"] >= 20                   # the flood was sent


def test_a_mycroft_upload_flood_from_one_device_does_not_starve_b(fair):
    out = fair.scenario("mycroft-flood")
    fair.check_b(out)
    assert out.attacker["errors"].get("too_fast", 0) >= 1, out.attacker    # HTTP 429 too_fast
    assert out.attacker["statuses"].get("200", 0) >= 1, out.attacker       # its fair share was served
