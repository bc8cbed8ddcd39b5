"""One satellite's continuous stream: audio in 80 ms chunks, an energy gate that lets a quiet
stream skip inference, the last two seconds kept (to catch the detector up when the gate opens,
to measure the wake word's loudness, and to hand the audio after the wake word to STT)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from appliance.audio.pcm import level_dbfs
from appliance.wake.features import CHUNK_BYTES, OwwState
from appliance.wake.models import MicroDetector, ModelRef
from mqtt.wake import WakeStart

CATCH_UP_CHUNKS = 28        # the openWakeWord state depends on the last 28 chunks only (2.24 s)
GATE_HOLD_CHUNKS = 25       # the gate stays open 2 s after the last loud chunk
FLOOR_RISE_DB = 0.1         # the noise floor follows a louder room slowly (per chunk: 1.25 dB/s)

LISTENING, ARBITRATING, SESSION = "listening", "arbitrating", "session"


@dataclass
class Stream:
    device: str
    start: WakeStart
    model: ModelRef
    threshold: float
    room: str
    oww: OwwState | None = None
    micro: MicroDetector | None = None
    pending: bytearray = field(default_factory=bytearray)   # engine-format audio not yet a whole chunk
    ready: deque = field(default_factory=deque)              # (chunk, arrival time) waiting for the detector
    history: deque = field(default_factory=lambda: deque(maxlen=CATCH_UP_CHUNKS))
    offset: int = 0                                          # engine-format bytes received
    mode: str = LISTENING
    capture: bytearray = field(default_factory=bytearray)    # audio after the wake word, while arbitrating
    detected_at: int = 0                                     # byte offset of the detection point in `capture`
    session: str | None = None
    sessions: int = 0
    floor_db: float | None = None                            # the room's noise floor (dBFS)
    gate_open: int = 0                                       # chunks the gate stays open
    quiet_until: float = 0.0                                 # no detection before this (monotonic)
    last_frame: float = field(default_factory=time.monotonic)
    arrived: float = field(default_factory=time.monotonic)   # when the newest frame came off the network
    opened: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.start.stream

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.start.stream)

    def add(self, pcm: bytes, at: float) -> None:
        """Engine-format audio from the device, `at` when it arrived: whole chunks go to `ready`
        (or to STT, see worker)."""
        self.last_frame = time.monotonic()
        self.arrived = at
        self.offset += len(pcm)
        self.pending.extend(pcm)
        while len(self.pending) >= CHUNK_BYTES:
            chunk = bytes(self.pending[:CHUNK_BYTES])
            del self.pending[:CHUNK_BYTES]
            self.ready.append((chunk, at))

    def quiet(self, chunk: bytes, gate_db: float) -> bool:
        """This chunk would not open the gate (no speech): skipping it changes no score."""
        return gate_db > 0 and not self.gate_open and self.floor_db is not None \
            and level_dbfs(chunk) < self.floor_db + gate_db

    def gate(self, chunk: bytes, gate_db: float) -> bool:
        """True when the detector must see this chunk: it is louder than the room's floor by gate_db."""
        level = level_dbfs(chunk)
        floor = self.floor_db
        self.floor_db = level if floor is None or level < floor else floor + FLOOR_RISE_DB
        if gate_db <= 0 or level >= self.floor_db + gate_db:
            self.gate_open = GATE_HOLD_CHUNKS
        elif self.gate_open:
            self.gate_open -= 1
        return self.gate_open > 0

    def level(self, chunks: int = 12) -> float:
        """Loudness of the last `chunks` (about one second: the wake word)."""
        recent = list(self.history)[-chunks:]
        return level_dbfs(b"".join(recent))

    def tail(self, samples_back: int) -> bytes:
        """Audio from `samples_back` samples before the newest whole chunk, up to the newest chunk."""
        joined = b"".join(self.history)
        return joined[max(0, len(joined) - samples_back * 2):]
