"""Fair shares on MQTT: a device flooding audio, or 200 connections churning on its login, leave
device B's transcript round trip within 2x of its quiet value (measured in the same test), and
the flooding device is told `too_fast` (docs/protocol.md)."""

from __future__ import annotations

import pytest

import time

from appliance.commands import client
from appliance.commands.client import DeviceLink
from fair_share_kit import fair  # noqa: F401  (the module's own Hearth)

pytestmark = [pytest.mark.own_hearth, pytest.mark.realtime, pytest.mark.timing]


def test_a_device_streaming_at_10x_real_time_is_refused_and_b_keeps_its_pace(fair):
    out = fair.scenario("stream-flood")
    fair.check_b(out)
    assert out.attacker["errors"].get("too_fast", 0) >= 1, out.attacker      # A got the documented error
    assert out.attacker["frames"] > 500                                        # and it did flood
    # only that client's sessions ended: after the cooldown, A sending at a sane pace is served again
    time.sleep(fair.hearth.settings.limits.audio_cooldown_s)
    with DeviceLink(out.a["credentials"]) as a:
        assert client.transcribe(a, fair.b_wav).final.text


def test_200_churning_connections_on_a_login_do_not_hold_up_b(fair):
    out = fair.scenario("churn")
    fair.check_b(out)                     # B's stt/start was never behind the churn (no unknown_session)
    assert out.attacker["connects"] >= 200, out.attacker
    # the churn itself was handled: A's presence (written off the network thread) shows its status
    churned = [d for d in fair.hearth.service.devices.registry.list() if d.name == "Churning A"]
    assert churned and churned[0].firmware == "flood"
