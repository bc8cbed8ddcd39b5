"""The Hermes (Rhasspy 2.5 / Snips) wire contract that Hearth speaks in compatibility mode.

Hermes payloads are camelCase JSON with no protocol version, so these messages are not Hearth
`Message`s: each is a small dataclass with `to_payload()` / `from_payload()` in Hermes's own
shape (the field names and topics follow the public Hermes docs and the `rhasspy-hermes`
classes). Fields a satellite leaves out take their defaults; fields Hearth does not know are
ignored. A payload that breaks the contract raises HermesError, which the edge publishes on
`hermes/error/<service>`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from typing import ClassVar

# pattern -> (direction, qos, retained, what it carries)
TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hermes/audioServer/<siteId>/audioFrame": ("satellite -> hearth", 0, False, "WAV chunk (binary)"),
    "hermes/audioServer/<siteId>/<sessionId>/audioSessionFrame": ("satellite -> hearth", 0, False, "WAV chunk (binary)"),
    "hermes/asr/startListening": ("any -> hearth", 1, False, "AsrStartListening"),
    "hermes/asr/stopListening": ("any -> hearth", 1, False, "AsrStopListening"),
    "hermes/asr/textCaptured": ("hearth -> all", 1, False, "AsrTextCaptured"),
    "hermes/hotword/toggleOn": ("any -> hearth", 1, False, "HotwordToggle"),
    "hermes/hotword/toggleOff": ("any -> hearth", 1, False, "HotwordToggle"),
    "hermes/hotword/<wakewordId>/detected": ("hearth -> all", 1, False, "HotwordDetected"),
    "hermes/tts/say": ("any -> hearth", 1, False, "TtsSay"),
    "hermes/audioServer/<siteId>/playBytes/<requestId>": ("hearth -> satellite", 1, False, "WAV file (binary)"),
    "hermes/audioServer/<siteId>/playFinished": ("satellite -> hearth", 1, False, "AudioPlayFinished"),
    "hermes/tts/sayFinished": ("hearth -> all", 1, False, "TtsSayFinished"),
    "hermes/error/<service>": ("hearth -> all", 1, False, "HermesErrorMessage"),
}

# What the service subscribes to while Hermes compatibility is on.
SUBSCRIPTIONS = (
    "hermes/audioServer/+/audioFrame",
    "hermes/audioServer/+/+/audioSessionFrame",
    "hermes/audioServer/+/playFinished",
    "hermes/asr/startListening",
    "hermes/asr/stopListening",
    "hermes/hotword/toggleOn",
    "hermes/hotword/toggleOff",
    "hermes/tts/say",
)

SITE_ID = re.compile(r"^[^/#+\x00]{1,64}$")


class HermesError(ValueError):
    """A Hermes payload that breaks the contract; `service` names the error topic (asr, tts, ...)."""

    def __init__(self, service: str, message: str, site_id: str = "default", session_id: str | None = None):
        super().__init__(message)
        self.service = service
        self.message = message
        self.site_id = site_id
        self.session_id = session_id


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class HermesMessage:
    """Base of the Hermes JSON messages: snake_case fields, camelCase on the wire."""

    SERVICE: ClassVar[str] = ""          # which hermes/error/<service> a bad payload is reported on
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        return {_camel(k): v for k, v in dataclasses.asdict(self).items()}

    def to_payload(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode()

    @classmethod
    def from_payload(cls, payload: bytes | str, max_bytes: int = 65536):
        name = cls.__name__
        if len(payload) > max_bytes:
            raise HermesError(cls.SERVICE, f"{name}: payload of {len(payload)} bytes is over the {max_bytes}-byte limit")
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HermesError(cls.SERVICE, f"{name}: payload is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise HermesError(cls.SERVICE, f"{name}: payload must be a JSON object")
        site = data.get("siteId") if isinstance(data.get("siteId"), str) else "default"
        session = data.get("sessionId") if isinstance(data.get("sessionId"), str) else None
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            key = _camel(f.name)
            if key not in data or data[key] is None and f.name not in cls.REQUIRED:
                if f.name in cls.REQUIRED:
                    raise HermesError(cls.SERVICE, f"{name}: '{key}' is required", site, session)
                continue
            values[f.name] = _check(cls.SERVICE, name, key, data[key], hints[f.name], site, session)
        msg = cls(**values)
        if not SITE_ID.match(msg.site_id):
            raise HermesError(cls.SERVICE, f"{name}: siteId must be 1-64 characters without / # +", "default", session)
        return msg


def _check(service: str, name: str, key: str, value, want, site: str, session: str | None):
    options = typing.get_args(want) if typing.get_origin(want) in (typing.Union, __import__("types").UnionType) else (want,)
    if value is None and type(None) in options:
        return None
    base = next(o for o in options if o is not type(None))
    base = typing.get_origin(base) or base
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (base in (int, float) and isinstance(value, bool)) or not isinstance(value, base):
        raise HermesError(service, f"{name}: '{key}' must be {base.__name__}", site, session)
    return value


@dataclass(frozen=True)
class AsrStartListening(HermesMessage):
    SERVICE: ClassVar[str] = "asr"
    site_id: str = "default"
    session_id: str | None = None
    lang: str | None = None
    stop_on_silence: bool = True
    send_audio_captured: bool = False
    wakeword_id: str | None = None
    intent_filter: list | None = None


@dataclass(frozen=True)
class AsrStopListening(HermesMessage):
    SERVICE: ClassVar[str] = "asr"
    site_id: str = "default"
    session_id: str | None = None


@dataclass(frozen=True)
class AsrTextCaptured(HermesMessage):
    SERVICE: ClassVar[str] = "asr"
    text: str = ""
    likelihood: float = 1.0
    seconds: float = 0.0
    site_id: str = "default"
    session_id: str | None = None
    wakeword_id: str | None = None
    asr_tokens: list | None = None
    lang: str | None = None


@dataclass(frozen=True)
class HotwordToggle(HermesMessage):
    """hermes/hotword/toggleOn and toggleOff carry the same payload."""
    SERVICE: ClassVar[str] = "hotword"
    site_id: str = "default"
    reason: str = ""


@dataclass(frozen=True)
class HotwordDetected(HermesMessage):
    SERVICE: ClassVar[str] = "hotword"
    model_id: str = ""
    model_version: str = ""
    model_type: str = "personal"
    current_sensitivity: float = 1.0
    site_id: str = "default"
    session_id: str | None = None
    send_audio_captured: bool | None = None
    lang: str | None = None
    custom_entities: dict | None = None


@dataclass(frozen=True)
class TtsSay(HermesMessage):
    SERVICE: ClassVar[str] = "tts"
    REQUIRED: ClassVar[tuple[str, ...]] = ("text",)
    text: str = ""
    site_id: str = "default"
    lang: str | None = None
    id: str | None = None
    session_id: str | None = None
    volume: float | None = None


@dataclass(frozen=True)
class TtsSayFinished(HermesMessage):
    SERVICE: ClassVar[str] = "tts"
    site_id: str = "default"
    id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class AudioPlayFinished(HermesMessage):
    SERVICE: ClassVar[str] = "audioServer"
    id: str | None = None
    session_id: str | None = None
    site_id: str = "default"


@dataclass(frozen=True)
class HermesErrorMessage(HermesMessage):
    """What hermes/error/<service> carries (Rhasspy's AsrError, TtsError, HotwordError)."""
    SERVICE: ClassVar[str] = "error"
    error: str = ""
    site_id: str = "default"
    context: str | None = None
    session_id: str | None = None

    @classmethod
    def of(cls, exc: HermesError) -> "HermesErrorMessage":
        return cls(error=exc.message, site_id=exc.site_id, context="hearth", session_id=exc.session_id)


def all_hermes_classes() -> list[type[HermesMessage]]:
    return list(HermesMessage.__subclasses__())


# topic builders and the parser for the audio server topics
def audio_frame(site: str) -> str: return f"hermes/audioServer/{site}/audioFrame"
def play_bytes(site: str, request: str) -> str: return f"hermes/audioServer/{site}/playBytes/{request}"
def play_finished(site: str) -> str: return f"hermes/audioServer/{site}/playFinished"
def hotword_detected(wakeword: str) -> str: return f"hermes/hotword/{wakeword}/detected"
def error(service: str) -> str: return f"hermes/error/{service}"


TEXT_CAPTURED = "hermes/asr/textCaptured"
SAY_FINISHED = "hermes/tts/sayFinished"


@dataclass(frozen=True)
class AudioTopic:
    kind: str                 # audioFrame | audioSessionFrame | playFinished
    site_id: str
    session_id: str | None = None


def parse_audio_server(topic: str) -> AudioTopic | None:
    parts = topic.split("/")
    if len(parts) < 4 or parts[:2] != ["hermes", "audioServer"]:
        return None
    if len(parts) == 4 and parts[3] in ("audioFrame", "playFinished"):
        return AudioTopic(parts[3], parts[2])
    if len(parts) == 5 and parts[4] == "audioSessionFrame":
        return AudioTopic("audioSessionFrame", parts[2], parts[3])
    return None

