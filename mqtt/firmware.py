"""Firmware messages and topics: the announce per device type, the offer, progress and result per device.

A device reads the retained announce of its type (`hearth/type/<type>/firmware`, which the ACL
lets every device of that type read) and the retained offer on its own topic; the offer is what
it should install now, after its channel (stable or beta) and any staged rollout. It reports
progress and the result on its own topics, and its type and running version on `state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mqtt import device_type as device_types
from mqtt.messages import Message, ProtocolError
from mqtt.topics import PREFIX, device

PROGRESS_STATES = ("downloading", "verifying", "installing", "rebooting")   # suggested; any short word is accepted

# pattern -> (direction, qos, retained, what it carries)
TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/type/<device_type>/firmware": ("hearth -> devices of the type", 1, True, "FirmwareAnnounce"),
    "hearth/<device>/firmware/offer": ("hearth -> device", 1, True, "FirmwareOffer"),
    "hearth/<device>/firmware/state": ("device -> hearth", 1, True, "FirmwareState"),
    "hearth/<device>/firmware/progress": ("device -> hearth", 0, False, "FirmwareProgress"),
    "hearth/<device>/firmware/result": ("device -> hearth", 1, False, "FirmwareResult"),
}

SUBSCRIPTIONS = (
    f"{PREFIX}/+/firmware/state",
    f"{PREFIX}/+/firmware/progress",
    f"{PREFIX}/+/firmware/result",
)


def type_firmware(device_type: str) -> str: return f"{PREFIX}/type/{device_types.check(device_type)}/firmware"
def offer(d: str) -> str: return device(d, "firmware", "offer")
def state(d: str) -> str: return device(d, "firmware", "state")
def progress(d: str) -> str: return device(d, "firmware", "progress")
def result(d: str) -> str: return device(d, "firmware", "result")


@dataclass(frozen=True)
class FirmwareAnnounce(Message):
    """The release every device of a type on the stable channel may install (after any rollout)."""

    TYPE: ClassVar[str] = "firmware-announce"
    device_type: str = ""
    channel: str = "stable"
    version: str = ""
    url: str = ""                    # path on Hearth's web server, e.g. /firmware/<sha256>.bin
    size: int = 0
    sha256: str = ""
    md5: str = ""
    notes: str = ""


@dataclass(frozen=True)
class FirmwareOffer(Message):
    """What this device should install now; `rollout` is canary (it goes first) or all."""

    TYPE: ClassVar[str] = "firmware-offer"
    version: str = ""
    channel: str = "stable"
    url: str = ""
    size: int = 0
    sha256: str = ""
    md5: str = ""
    notes: str = ""
    rollout: str = "all"


@dataclass(frozen=True)
class FirmwareState(Message):
    """A device's type and running version (publish retained at boot)."""

    TYPE: ClassVar[str] = "firmware-state"
    REQUIRED: ClassVar[tuple[str, ...]] = ("device_type", "version")
    device_type: str = ""
    version: str = ""

    def validate(self) -> None:
        if not self.version:
            raise ProtocolError("bad_message", f"{self.TYPE}: version must not be empty")
        if not device_types.is_valid(self.device_type):
            raise ProtocolError("bad_message", f"{self.TYPE}: device_type must be {device_types.RULE}")


@dataclass(frozen=True)
class FirmwareProgress(Message):
    TYPE: ClassVar[str] = "firmware-progress"
    REQUIRED: ClassVar[tuple[str, ...]] = ("version",)
    version: str = ""
    state: str = "downloading"
    bytes: int = 0
    total: int = 0

    def validate(self) -> None:
        if not self.state or len(self.state) > 32:
            raise ProtocolError("bad_message", f"{self.TYPE}: state must be 1-32 characters, e.g. one of {PROGRESS_STATES}")
        if self.bytes < 0 or self.total < 0:
            raise ProtocolError("bad_message", f"{self.TYPE}: bytes and total must not be negative")


@dataclass(frozen=True)
class FirmwareResult(Message):
    """The outcome of an install: ok with the version now running, or the error."""

    TYPE: ClassVar[str] = "firmware-result"
    REQUIRED: ClassVar[tuple[str, ...]] = ("version", "ok")
    version: str = ""
    ok: bool = False
    error: str = ""
    running: str = ""                # version running after the attempt (the old one after a rollback)


MESSAGES: dict[str, type[Message]] = {
    "firmware/state": FirmwareState,
    "firmware/progress": FirmwareProgress,
    "firmware/result": FirmwareResult,
}
