"""The one rule for device-type names, used everywhere a type appears.

A device type names a kind of device (`satellite`, `speaker-s3`, `esp32.box`). It is a topic level
(`hearth/type/<type>/firmware`), a line in the broker ACL (`topic read hearth/type/<type>/#`), a
path segment (`/firmware/<type>/manifest.json`) and a key in SQLite, so pairing, the firmware cache,
the MQTT messages and the docs all check it here and nowhere else.
"""

from __future__ import annotations

import re

PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RULE = "1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit"
EXAMPLE = "e.g. satellite, speaker-s3"


class BadDeviceType(ValueError):
    """A name that breaks the rule; the message quotes the rule."""


def is_valid(value: object) -> bool:
    return isinstance(value, str) and PATTERN.match(value) is not None


def check(value: object, what: str = "device type") -> str:
    """The name itself, or BadDeviceType saying what the rule is."""
    if not is_valid(value):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise BadDeviceType(f"'{shown}' is not a valid {what}: {RULE} ({EXAMPLE})")
    return value  # type: ignore[return-value]
