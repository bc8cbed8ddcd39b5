"""Every JSON control message on the wire, as a small dataclass with to/from payload.

Compatibility rules (docs/protocol.md, "Versions"): each control message carries `v`, the
protocol version its sender speaks. Hearth accepts any v from PROTOCOL_MIN to PROTOCOL_MAX,
ignores fields it does not know (so a newer device's additions never break it), fills defaults
for fields an older device leaves out, and refuses v outside the range with the error code
`unsupported_version`. Audio frames are binary and carry no version.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import ClassVar

from mqtt.topics import REF_ID

PROTOCOL_VERSION = 1
PROTOCOL_MIN = 1
PROTOCOL_MAX = 1

AUDIO_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)


class ProtocolError(ValueError):
    """A payload that breaks the contract; `code` is the error code sent to the device."""

    def __init__(self, code: str, message: str, ref: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


@dataclass(frozen=True)
class Message:
    """Base of the JSON control messages. Subclasses list their fields with defaults."""

    TYPE: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        body = dataclasses.asdict(self)
        return {"type": self.TYPE, "v": PROTOCOL_VERSION, **body}

    def to_payload(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_payload(cls, payload: bytes | str, max_bytes: int = 65536):
        if len(payload) > max_bytes:
            raise ProtocolError("too_large", f"{cls.TYPE}: payload of {len(payload)} bytes is over the {max_bytes}-byte limit")
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError("bad_json", f"{cls.TYPE}: payload is not JSON ({exc})") from None
        except RecursionError:
            raise ProtocolError("bad_json", f"{cls.TYPE}: payload is nested too deeply") from None
        if not isinstance(data, dict):
            raise ProtocolError("bad_message", f"{cls.TYPE}: payload must be a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict):
        ref = data.get("session") or data.get("request")
        if "type" in data and data["type"] != cls.TYPE:
            raise ProtocolError("unknown_message", f"a '{data['type']}' message on the topic for '{cls.TYPE}'",
                                ref if isinstance(ref, str) else None)
        ref = ref if isinstance(ref, str) else None
        v = data.get("v")
        if not isinstance(v, int) or isinstance(v, bool):
            raise ProtocolError("bad_message", f"{cls.TYPE}: field 'v' (protocol version) is required and must be an integer", ref)
        if not PROTOCOL_MIN <= v <= PROTOCOL_MAX:
            raise ProtocolError(
                "unsupported_version",
                f"{cls.TYPE}: protocol version {v} is not supported; this server speaks {PROTOCOL_MIN}..{PROTOCOL_MAX}",
                ref,
            )
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.name in cls.REQUIRED:
                    raise ProtocolError("bad_message", f"{cls.TYPE}: field '{f.name}' is required", ref)
                continue
            values[f.name] = _check(cls.TYPE, f.name, data[f.name], hints[f.name], ref)
        msg = cls(**values)
        msg.validate()
        return msg

    def validate(self) -> None:
        """Checks beyond types; raise ProtocolError."""


def _check(kind: str, name: str, value, want, ref):
    origin = typing.get_origin(want)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        options = typing.get_args(want)
        if value is None and type(None) in options:
            return None
        want = next(o for o in options if o is not type(None))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = typing.get_origin(want) or want
    if (base is int and isinstance(value, bool)) or not isinstance(value, base):
        raise ProtocolError("bad_message", f"{kind}: field '{name}' must be {getattr(base, '__name__', base)}", ref)
    return value


def _ref(kind: str, name: str, value: str) -> None:
    if not REF_ID.match(value):
        raise ProtocolError("bad_message", f"{kind}: '{name}' must be 1-64 characters of A-Z a-z 0-9 _ . : -", value[:64])


@dataclass(frozen=True)
class AudioFormat:
    rate: int = 16000
    width: int = 2
    channels: int = 1

    def check(self, kind: str, ref: str | None) -> None:
        if self.rate not in AUDIO_RATES:
            raise ProtocolError("bad_audio_format", f"{kind}: rate {self.rate} is not supported (use one of {AUDIO_RATES})", ref)
        if self.width != 2:
            raise ProtocolError("bad_audio_format", f"{kind}: only 16-bit PCM (width 2) is supported, not width {self.width}", ref)
        if self.channels not in (1, 2):
            raise ProtocolError("bad_audio_format", f"{kind}: channels must be 1 or 2, not {self.channels}", ref)

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.width * self.channels


@dataclass(frozen=True)
class SttStart(Message):
    TYPE: ClassVar[str] = "stt-start"
    REQUIRED: ClassVar[tuple[str, ...]] = ("session",)
    session: str = ""
    rate: int = 16000
    width: int = 2
    channels: int = 1
    endpoint: str = "device"         # device: the device sends stt/end | vad: Hearth ends it at silence
    partials: bool = True
    language: str | None = None
    turn: str = "auto"               # the device's hint for the end of turn: auto | eager | patient

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.rate, self.width, self.channels)

    def validate(self) -> None:
        _ref(self.TYPE, "session", self.session)
        self.audio_format.check(self.TYPE, self.session)
        if self.endpoint not in ("device", "vad"):
            raise ProtocolError("bad_message", f"{self.TYPE}: endpoint must be 'device' or 'vad'", self.session)
        if self.turn not in ("auto", "eager", "patient"):
            raise ProtocolError("bad_message", f"{self.TYPE}: turn must be 'auto', 'eager' or 'patient'", self.session)


@dataclass(frozen=True)
class SttEnd(Message):
    TYPE: ClassVar[str] = "stt-end"
    REQUIRED: ClassVar[tuple[str, ...]] = ("session",)
    session: str = ""

    def validate(self) -> None:
        _ref(self.TYPE, "session", self.session)


@dataclass(frozen=True)
class SttPartial(Message):
    TYPE: ClassVar[str] = "stt-partial"
    session: str = ""
    text: str = ""


@dataclass(frozen=True)
class SttFinal(Message):
    TYPE: ClassVar[str] = "stt-final"
    session: str = ""
    text: str = ""
    audio_s: float = 0.0             # seconds of audio received
    processing_ms: float = 0.0       # from the end of the session to this message
    decode_ms: float = 0.0           # time the engine spent on the final decode
    endpoint: str = "device"         # device | vad | no-speech | limit
    engine: str = ""


@dataclass(frozen=True)
class TtsSay(Message):
    TYPE: ClassVar[str] = "tts-say"
    REQUIRED: ClassVar[tuple[str, ...]] = ("request", "text")
    request: str = ""
    text: str = ""
    voice: str | None = None

    def validate(self) -> None:
        _ref(self.TYPE, "request", self.request)
        if not self.text.strip():
            raise ProtocolError("bad_text", f"{self.TYPE}: text is empty", self.request)


@dataclass(frozen=True)
class TtsStart(Message):
    TYPE: ClassVar[str] = "tts-start"
    request: str = ""
    rate: int = 22050
    width: int = 2
    channels: int = 1
    voice: str = ""


@dataclass(frozen=True)
class TtsEnd(Message):
    TYPE: ClassVar[str] = "tts-end"
    request: str = ""
    chunks: int = 0
    audio_s: float = 0.0
    processing_ms: float = 0.0
    cached: bool = False


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: str = ""
    message: str = ""
    ref: str | None = None           # the session or request it concerns, when known

    @classmethod
    def of(cls, exc: ProtocolError) -> "Error":
        return cls(code=exc.code, message=exc.message, ref=exc.ref)


@dataclass(frozen=True)
class ServerInfo(Message):
    TYPE: ClassVar[str] = "server-info"
    version: str = ""
    protocol_min: int = PROTOCOL_MIN
    protocol_max: int = PROTOCOL_MAX
    online: bool = True
    stt_engine: str = ""
    voices: list = field(default_factory=list)


def all_message_classes() -> list[type[Message]]:
    """Every concrete message class in every mqtt module (the round-trip test walks them all)."""
    import importlib
    import pkgutil

    import mqtt
    for mod in pkgutil.iter_modules(mqtt.__path__):
        importlib.import_module(f"mqtt.{mod.name}")
    found, todo = [], [Message]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.TYPE:
                found.append(sub)
    return found


def all_topics() -> dict[str, tuple]:
    """Every TOPICS table of every mqtt module, merged (the docs test checks each is documented)."""
    import importlib
    import pkgutil

    import mqtt
    merged: dict[str, tuple] = {}
    for mod in pkgutil.iter_modules(mqtt.__path__):
        merged.update(getattr(importlib.import_module(f"mqtt.{mod.name}"), "TOPICS", {}))
    return merged
