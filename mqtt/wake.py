"""Satellites and wake word: the wire contract of a device that streams audio all the time.

A satellite opens a stream (`WakeStart`), sends PCM frames on its stream topic without pause,
and closes it with `WakeEnd` (also its MQTT last will, so a device that vanishes ends its
streams). Hearth listens for the wake word on the stream, announces a detection, arbitrates
between devices that heard the same utterance and opens an STT session on the winner's stream
(the transcript arrives on the device's usual `stt/final` topic). Feedback messages drive the
satellite's lights and sounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mqtt.messages import AudioFormat, Message, ProtocolError, _ref
from mqtt.topics import PREFIX, device

FEEDBACK_STATES = ("wake", "listening", "thinking", "speaking", "idle", "error")

TOPICS: dict[str, tuple[str, int, bool, str]] = {
    "hearth/<device>/wake/start": ("device -> hearth", 1, False, "WakeStart"),
    "hearth/<device>/wake/audio/<stream>": ("device -> hearth", 0, False, "PCM frame (binary), sent without pause"),
    "hearth/<device>/wake/end": ("device -> hearth", 1, False, "WakeEnd (also the device's MQTT last will)"),
    "hearth/<device>/wake/detected": ("hearth -> device", 1, False, "WakeDetected"),
    "hearth/<device>/wake/stand-down": ("hearth -> device", 1, False, "WakeStandDown"),
    "hearth/<device>/feedback": ("hearth -> device", 1, False, "Feedback"),
}

SUBSCRIPTIONS = (
    f"{PREFIX}/+/wake/start",
    f"{PREFIX}/+/wake/audio/+",
    f"{PREFIX}/+/wake/end",
)


def wake_start(d: str) -> str: return device(d, "wake", "start")
def wake_audio(d: str, stream: str) -> str: return device(d, "wake", "audio", stream)
def wake_end(d: str) -> str: return device(d, "wake", "end")
def wake_detected(d: str) -> str: return device(d, "wake", "detected")
def stand_down(d: str) -> str: return device(d, "wake", "stand-down")
def feedback(d: str) -> str: return device(d, "feedback")


@dataclass(frozen=True)
class WakeStart(Message):
    """Open a continuous stream. Engine, model and sensitivity fall back to the [wake] config."""

    TYPE: ClassVar[str] = "wake-start"
    REQUIRED: ClassVar[tuple[str, ...]] = ("stream",)
    stream: str = ""
    rate: int = 16000
    width: int = 2
    channels: int = 1
    engine: str | None = None         # openwakeword | microwakeword
    model: str | None = None          # hey_mycroft, alexa, ... or a model in [wake] models_dir
    sensitivity: float | None = None  # 0..1, higher triggers more easily
    room: str | None = None           # arbitration group when [wake] arbitration_group = "room"
    language: str | None = None       # for the STT session opened on detection

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.rate, self.width, self.channels)

    def validate(self) -> None:
        _ref(self.TYPE, "stream", self.stream)
        self.audio_format.check(self.TYPE, self.stream)


@dataclass(frozen=True)
class WakeEnd(Message):
    """Close a stream; an empty `stream` closes every stream of the device (the last will's form)."""

    TYPE: ClassVar[str] = "wake-end"
    stream: str = ""
    reason: str = "goodbye"           # goodbye | lost (the last will)

    def validate(self) -> None:
        if self.stream:
            _ref(self.TYPE, "stream", self.stream)


@dataclass(frozen=True)
class WakeDetected(Message):
    TYPE: ClassVar[str] = "wake-detected"
    stream: str = ""
    model: str = ""
    score: float = 0.0                # the model's probability at the detection
    level_dbfs: float = 0.0           # loudness of the wake word at this device
    engine: str = ""                  # openwakeword | microwakeword: which engine heard it


@dataclass(frozen=True)
class WakeStandDown(Message):
    """Another device heard the same wake word better: stop the listening indicator."""

    TYPE: ClassVar[str] = "wake-stand-down"
    stream: str = ""
    model: str = ""
    winner: str = ""                  # the device that answers


@dataclass(frozen=True)
class Feedback(Message):
    """What a satellite's lights and sounds should show: wake, listening, thinking, speaking, idle, error."""

    TYPE: ClassVar[str] = "feedback"
    state: str = "idle"
    stream: str = ""
    session: str | None = None        # the STT session (listening, thinking) or TTS request (speaking)


def check_sensitivity(msg: WakeStart) -> None:
    if msg.sensitivity is not None and not 0.0 <= msg.sensitivity <= 1.0:
        raise ProtocolError("bad_message", f"{msg.TYPE}: sensitivity must be between 0 and 1", msg.stream)
