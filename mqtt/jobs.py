"""Work for helpers: speech jobs on the broker, each sent to the one helper the box chose.

The box picks a taker for each final decode it hands out (a helper online with the asked model,
or its own engine) and publishes the job on that helper's own job topic,
`hearth/jobs/v2/<helper>/stt` (QoS 1). The broker lets each helper login read only its own job
topic (and the retained `hearth/jobs/v1/info`), so a helper never sees another's jobs or audio.
Jobs protocol 1 used one shared subscription for all helpers: Mosquitto's ACL cannot tell a
`$share/...` subscription from a plain one, so any helper could read every job and answer first.

A helper answers on its own topics (the broker's `hearth/%u/#` rule names the sender):
`helper/taken` when a job reaches it, `helper/result` when it is done, and its offer, retained,
with an `online: false` last will. The box believes an answer only from the login it sent that job
to. A job's payload is binary: a 2-byte big-endian header length, a JSON header, then 16 kHz mono
s16le PCM.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from mqtt.messages import Message, ProtocolError
from mqtt.topics import PREFIX, REF_ID, device

JOBS_VERSION = 2                     # the jobs protocol; a topic level, so other versions never meet
HELPER_TYPE = "helper"               # the device type a helper pairs as
JOBS_ROOT = f"{PREFIX}/jobs/v{JOBS_VERSION}"
# where a helper of every jobs version looks first (protocol 1 read it too): it never moves, so an
# old helper reads the box's version and says what to update
INFO = f"{PREFIX}/jobs/v1/info"
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 4000                      # characters of one transcript
MAX_HEADER = 1024

TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/jobs/v1/info": ("hearth -> helpers", 1, True, "JobsInfo (the box's jobs protocol)"),
    "hearth/jobs/v2/<helper>/stt": ("hearth -> the helper it chose", 1, False, "SttJob (binary header + PCM)"),
    "hearth/<helper>/helper/offer": ("helper -> hearth", 1, True, "HelperOffer (also its last will)"),
    "hearth/<helper>/helper/taken": ("helper -> hearth", 1, False, "JobTaken"),
    "hearth/<helper>/helper/result": ("helper -> hearth", 1, False, "JobResult"),
}

# The box reads helpers' messages at QoS 0: a helper that floods them (QoS 1 towards the broker)
# then costs the box bytes, never its broker queue. At QoS 1 Mosquitto holds them in the service's
# queue (20 in flight, 1000 queued) and, measured here with 1,500 at once, drops the overflow:
# devices' audio and stt/end among it.
SUBSCRIPTIONS = ((f"{PREFIX}/+/helper/+", 0),)


def info() -> str: return INFO
def jobs_for(helper: str) -> str: return f"{JOBS_ROOT}/{helper}/stt"
def offer(helper: str) -> str: return device(helper, "helper", "offer")
def taken(helper: str) -> str: return device(helper, "helper", "taken")
def result(helper: str) -> str: return device(helper, "helper", "result")


def helper_acl(helper: str) -> dict:
    """What a helper's login may do beyond its own topics: read the jobs sent to it (no one else's);
    never act as a voice device (speech, replies, wake word)."""
    return {"extra_read": (INFO, f"{JOBS_ROOT}/{helper}/#"),
            "deny": (*(f"{PREFIX}/{helper}/{kind}/#" for kind in ("stt", "tts", "wake")), f"{PREFIX}/{helper}/feedback")}


def check_model(model: object) -> str:
    if not isinstance(model, str) or not MODEL.match(model):
        raise ProtocolError("bad_message", f"model name must be 1-64 characters of A-Z a-z 0-9 _ . -, not {model!r:.80}")
    return model


@dataclass(frozen=True)
class JobsInfo(Message):
    TYPE: ClassVar[str] = "jobs-info"
    REQUIRED: ClassVar[tuple[str, ...]] = ("jobs_version",)
    jobs_version: int = JOBS_VERSION


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
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
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
