"""Topic builders and the one parser for inbound topics.

Every topic a device or Hearth uses is listed in TOPICS; docs/protocol.md must name each of them
(tests/test_protocol_docs.py fails otherwise). The device id is always the second level, so the
broker ACL `pattern readwrite hearth/%u/#` confines a device to its own topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "hearth"
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REF_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# pattern -> (direction, qos, retained, what it carries)
TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/server/info": ("hearth -> all", 1, True, "ServerInfo"),
    "hearth/<device>/stt/start": ("device -> hearth", 1, False, "SttStart"),
    "hearth/<device>/stt/audio/<session>": ("device -> hearth", 0, False, "PCM frame (binary)"),
    "hearth/<device>/stt/end": ("device -> hearth", 1, False, "SttEnd"),
    "hearth/<device>/stt/partial": ("hearth -> device", 0, False, "SttPartial"),
    "hearth/<device>/stt/final": ("hearth -> device", 1, False, "SttFinal"),
    "hearth/<device>/tts/say": ("device -> hearth", 1, False, "TtsSay"),
    "hearth/<device>/tts/start": ("hearth -> device", 1, False, "TtsStart"),
    "hearth/<device>/tts/audio/<request>": ("hearth -> device", 1, False, "PCM chunk (binary)"),
    "hearth/<device>/tts/end": ("hearth -> device", 1, False, "TtsEnd"),
    "hearth/<device>/error": ("hearth -> device", 1, False, "Error"),
}

# What the service subscribes to.
SUBSCRIPTIONS = (
    f"{PREFIX}/+/stt/+",          # start, end (and Hearth's own partial/final, ignored)
    f"{PREFIX}/+/stt/audio/+",
    f"{PREFIX}/+/tts/+",          # say (and Hearth's own start/end, ignored)
)

# Hearth -> device kinds that come back to the service through its own subscriptions.
OUTBOUND_KINDS = frozenset({"stt/partial", "stt/final", "tts/start", "tts/end", "error"})


def server_info() -> str:
    return f"{PREFIX}/server/info"


def device(device_id: str, *rest: str) -> str:
    return "/".join((PREFIX, device_id, *rest))


def stt_start(d: str) -> str: return device(d, "stt", "start")
def stt_audio(d: str, session: str) -> str: return device(d, "stt", "audio", session)
def stt_end(d: str) -> str: return device(d, "stt", "end")
def stt_partial(d: str) -> str: return device(d, "stt", "partial")
def stt_final(d: str) -> str: return device(d, "stt", "final")
def tts_say(d: str) -> str: return device(d, "tts", "say")
def tts_start(d: str) -> str: return device(d, "tts", "start")
def tts_audio(d: str, request: str) -> str: return device(d, "tts", "audio", request)
def tts_end(d: str) -> str: return device(d, "tts", "end")
def error(d: str) -> str: return device(d, "error")


@dataclass(frozen=True)
class Inbound:
    """A parsed inbound topic: which device, which kind of message, and its session/request ref."""

    device: str
    kind: str          # e.g. "stt/start", "stt/audio", "tts/say", "status"
    ref: str | None = None


def parse(topic: str) -> Inbound | None:
    """Split an inbound device topic; None for anything that is not a valid device topic."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != PREFIX or not DEVICE_ID.match(parts[1]):
        return None
    dev, rest = parts[1], parts[2:]
    if len(rest) == 1:
        return Inbound(dev, rest[0])
    if len(rest) == 3 and rest[1] == "audio":
        if not REF_ID.match(rest[2]):
            return None
        return Inbound(dev, f"{rest[0]}/audio", rest[2])
    if len(rest) == 2:
        return Inbound(dev, "/".join(rest))
    return None
