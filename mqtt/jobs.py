"""Work for helpers: speech jobs on the broker, taken through a shared subscription.

The box publishes each final decode it hands out on `hearth/jobs/v1/stt/<model>` (QoS 1), one
topic per model, so a job that asks for a model reaches only helpers that offer it. Every helper
of that model (and the box's own engine, when it takes jobs) subscribes through
`$share/<group>/...`: Mosquitto hands each job to one member. The group name is a secret the box
publishes retained on `hearth/jobs/v1/info`, which only helpers and the service may read: a
device login that joined a known group would be handed jobs it may not read, and Mosquitto drops
those (measured here with 2.0.11: every second job lost).

A helper answers on its own topics (the broker's `hearth/%u/#` rule names the sender):
`helper/taken` when a job reaches it, `helper/result` when it is done, and its offer, retained,
with an `online: false` last will. A job's payload is binary: a 2-byte big-endian header length,
a JSON header, then 16 kHz mono s16le PCM.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from mqtt.messages import Message, ProtocolError
from mqtt.topics import PREFIX, REF_ID, device

JOBS_VERSION = 1                     # the jobs protocol; a topic level, so other versions never meet
HELPER_TYPE = "helper"               # the device type a helper pairs as
JOBS_ROOT = f"{PREFIX}/jobs/v{JOBS_VERSION}"
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 4000                      # characters of one transcript
MAX_HEADER = 1024

TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/jobs/v1/info": ("hearth -> helpers", 1, True, "JobsInfo (the shared group's name)"),
    "hearth/jobs/v1/stt/<model>": ("hearth -> one helper ($share)", 1, False, "SttJob (binary header + PCM)"),
    "hearth/<helper>/helper/offer": ("helper -> hearth", 1, True, "HelperOffer (also its last will)"),
    "hearth/<helper>/helper/taken": ("helper -> hearth", 1, False, "JobTaken"),
    "hearth/<helper>/helper/result": ("helper -> hearth", 1, False, "JobResult"),
}

# The box reads helpers' messages at QoS 0: a helper that floods them (QoS 1 towards the broker)
# then costs the box bytes, never its broker queue. At QoS 1 Mosquitto holds them in the service's
# queue (20 in flight, 1000 queued) and, measured here with 1,500 at once, drops the overflow:
# devices' audio and stt/end among it.
SUBSCRIPTIONS = ((f"{PREFIX}/+/helper/+", 0),)


def info() -> str: return f"{JOBS_ROOT}/info"
def stt_jobs(model: str) -> str: return f"{JOBS_ROOT}/stt/{model}"
def shared(group: str, topic: str) -> str: return f"$share/{group}/{topic}"
def offer(helper: str) -> str: return device(helper, "helper", "offer")
def taken(helper: str) -> str: return device(helper, "helper", "taken")
def result(helper: str) -> str: return device(helper, "helper", "result")


def helper_acl(helper: str) -> dict:
    """What a helper's login may do beyond its own topics: read jobs; never act as a voice device."""
    return {"extra_read": (f"{JOBS_ROOT}/#",),
            "deny": (f"{PREFIX}/{helper}/stt/#", f"{PREFIX}/{helper}/tts/#")}


def check_model(model: object) -> str:
    if not isinstance(model, str) or not MODEL.match(model):
        raise ProtocolError("bad_message", f"model name must be 1-64 characters of A-Z a-z 0-9 _ . -, not {model!r:.80}")
    return model


@dataclass(frozen=True)
class JobsInfo(Message):
    TYPE: ClassVar[str] = "jobs-info"
    REQUIRED: ClassVar[tuple[str, ...]] = ("group",)
    group: str = ""
    jobs_version: int = JOBS_VERSION

    def validate(self) -> None:
        if not re.match(r"^[A-Za-z0-9_-]{1,64}$", self.group):
            raise ProtocolError("bad_message", "jobs-info: group must be 1-64 characters of A-Z a-z 0-9 _ -")


@dataclass(frozen=True)
class HelperOffer(Message):
    """What a helper lends: retained on its offer topic; `online: false` is its last will."""

    TYPE: ClassVar[str] = "helper-offer"
    REQUIRED: ClassVar[tuple[str, ...]] = ("online",)
    online: bool = False
    jobs_version: int = JOBS_VERSION
    engine: str = ""
    models: list = field(default_factory=list)
    languages: list = field(default_factory=list)
    device: str = "cpu"              # cpu | cuda
    capacity: int = 1
    version: str = ""

    def validate(self) -> None:
        if len(self.models) > 16 or len(self.languages) > 64:
            raise ProtocolError("bad_message", "helper-offer: at most 16 models and 64 languages")
        for m in self.models:
            check_model(m)
        if not all(isinstance(x, str) and len(x) <= 16 for x in self.languages):
            raise ProtocolError("bad_message", "helper-offer: languages must be short language codes")
        if not 1 <= self.capacity <= 65535 or len(self.engine) > 32 or len(self.version) > 32 or len(self.device) > 16:
            raise ProtocolError("bad_message", "helper-offer: capacity 1-65535; engine, version, device short text")


@dataclass(frozen=True)
class JobTaken(Message):
    TYPE: ClassVar[str] = "job-taken"
    REQUIRED: ClassVar[tuple[str, ...]] = ("job",)
    job: str = ""

    def validate(self) -> None:
        if not REF_ID.match(self.job):
            raise ProtocolError("bad_message", "job-taken: job must be a job id")


@dataclass(frozen=True)
class JobResult(Message):
    TYPE: ClassVar[str] = "job-result"
    REQUIRED: ClassVar[tuple[str, ...]] = ("job",)
    job: str = ""
    text: str = ""
    ok: bool = True                  # false: the helper's engine failed on this audio
    decode_ms: float = 0.0

    def validate(self) -> None:
        if not REF_ID.match(self.job):
            raise ProtocolError("bad_message", "job-result: job must be a job id")
        if len(self.text) > MAX_TEXT or not 0 <= self.decode_ms < 3_600_000:
            raise ProtocolError("bad_message", f"job-result: text at most {MAX_TEXT} characters, decode_ms 0-3600000")


@dataclass(frozen=True)
class SttJob:
    """One decode: binary on the wire (2-byte header length, JSON header, PCM)."""

    job: str
    model: str
    deadline_ms: int                 # from when the box sent it; the helper drops it after that
    pcm: bytes                       # 16 kHz mono s16le
    language: str | None = None
    v: int = JOBS_VERSION

    def to_payload(self) -> bytes:
        head = json.dumps({"v": self.v, "job": self.job, "model": self.model, "deadline_ms": self.deadline_ms,
                           "language": self.language}, separators=(",", ":")).encode()
        return struct.pack(">H", len(head)) + head + self.pcm

    @classmethod
    def from_payload(cls, payload: bytes, max_bytes: int) -> "SttJob":
        if len(payload) > max_bytes:
            raise ProtocolError("too_large", f"stt job of {len(payload)} bytes is over the {max_bytes}-byte limit")
        if len(payload) < 2:
            raise ProtocolError("bad_message", "stt job: no header")
        (n,) = struct.unpack(">H", payload[:2])
        if n > MAX_HEADER or len(payload) < 2 + n:
            raise ProtocolError("bad_message", "stt job: header length is wrong")
        try:
            head = json.loads(payload[2:2 + n])
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ProtocolError("bad_json", "stt job: header is not JSON") from None
        if not isinstance(head, dict):
            raise ProtocolError("bad_message", "stt job: header must be a JSON object")
        if head.get("v") != JOBS_VERSION:
            raise ProtocolError("unsupported_version",
                                f"stt job: jobs protocol {head.get('v')!r}; this helper speaks {JOBS_VERSION}")
        job, deadline, lang = head.get("job"), head.get("deadline_ms"), head.get("language")
        if not isinstance(job, str) or not REF_ID.match(job):
            raise ProtocolError("bad_message", "stt job: job must be a job id")
        if not isinstance(deadline, int) or isinstance(deadline, bool) or not 0 < deadline <= 600_000:
            raise ProtocolError("bad_message", "stt job: deadline_ms must be 1-600000")
        if lang is not None and (not isinstance(lang, str) or len(lang) > 16):
            raise ProtocolError("bad_message", "stt job: language must be a short code or null")
        pcm = payload[2 + n:]
        if len(pcm) % 2:
            raise ProtocolError("bad_message", "stt job: PCM must be whole 16-bit samples")
        return cls(job, check_model(head.get("model")), deadline, pcm, lang)
