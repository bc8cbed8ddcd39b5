"""The device registry's messages on the wire: presence, and settings pushed to each device.

A device publishes `status` retained with `online: true` when it connects and sets the same topic
with `online: false` as its last will, so Hearth (and anyone allowed to read it) knows it is gone
even when it loses power. Hearth publishes each device's effective settings retained on
`settings` when it connects, whenever they change, and when the device asks on `settings/get`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mqtt.messages import Message, ProtocolError
from mqtt.topics import PREFIX, device

TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/<device>/status": ("device -> hearth", 1, True, "DeviceStatus (also the device's last will)"),
    "hearth/<device>/settings": ("hearth -> device", 1, True, "DeviceSettings"),
    "hearth/<device>/settings/get": ("device -> hearth", 1, False, "SettingsGet"),
}

SUBSCRIPTIONS = (f"{PREFIX}/+/status", f"{PREFIX}/+/settings/get")


def status(d: str) -> str: return device(d, "status")
def settings(d: str) -> str: return device(d, "settings")
def settings_get(d: str) -> str: return device(d, "settings", "get")


@dataclass(frozen=True)
class DeviceStatus(Message):
    TYPE: ClassVar[str] = "device-status"
    REQUIRED: ClassVar[tuple[str, ...]] = ("online",)
    online: bool = False
    firmware: str = ""
    platform: str = ""

    def validate(self) -> None:
        if len(self.firmware) > 64 or len(self.platform) > 64:
            raise ProtocolError("bad_message", f"{self.TYPE}: firmware and platform are at most 64 characters")


@dataclass(frozen=True)
class DeviceSettings(Message):
    TYPE: ClassVar[str] = "device-settings"
    name: str = ""
    room: str = ""
    language: str = "en"
    wake_word: str = ""
    voice: str = ""
    units: str = "metric"            # metric | imperial
    time_format: str = "24h"         # 24h | 12h
    location: str = ""               # a place name, for the person
    latitude: float = 0.0
    longitude: float = 0.0
    timezone: str = "UTC"            # IANA name

    @classmethod
    def of(cls, name: str, room: str, values: dict) -> "DeviceSettings":
        loc = values["location"]
        return cls(name=name, room=room, language=values["language"], wake_word=values["wake_word"],
                   voice=values["voice"], units=values["units"], time_format=values["time_format"],
                   location=loc["name"], latitude=loc["latitude"], longitude=loc["longitude"], timezone=loc["timezone"])


@dataclass(frozen=True)
class SettingsGet(Message):
    TYPE: ClassVar[str] = "settings-get"
