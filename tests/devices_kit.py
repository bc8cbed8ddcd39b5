"""Pair simulated devices the real way (code -> a person confirms -> activate) in a few ms.

    from devices_kit import pair_device
    paired = pair_device(hearth, "Kitchen", device_type="satellite")
    with DeviceLink(paired.credentials) as link: ...

Goes through service.devices (the same calls the HTTP API makes), not through HTTP, so the
per-address rate limit of the pairing endpoints does not throttle a test suite.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

from appliance.devices.pairing import Activation
from appliance.devices.registry import Device
from mqtt.client import Credentials

_clients = itertools.count()


@dataclass(frozen=True)
class Paired:
    device: Device
    credentials: Credentials
    access: str
    refresh: str

    @property
    def id(self) -> str:
        return self.device.id


def pair_device(hearth, name: str = "", device_type: str = "satellite", room: str = "") -> Paired:
    devices = hearth.service.devices
    state = uuid.uuid4().hex
    client = f"test-client-{next(_clients)}"
    code, token = devices.request_code(state, client, device_type, platform="test", name=name)
    devices.confirm(code, name or None, room)
    done: Activation = devices.activate(state, token, client, firmware="1.0")
    creds = Credentials("127.0.0.1", hearth.settings.broker.port, done.device.id, done.mqtt_password)
    return Paired(done.device, creds, done.tokens.access, done.tokens.refresh)
