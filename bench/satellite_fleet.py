"""The benchmark's satellites: each its own paired device with its own broker login under the ACL,
on its own MQTT connection, all paced by one sender thread (the bench shares the cores with Hearth).

Pairing goes the way a device's does: `GET /v1/device/code` over HTTP, a person confirms the code
with `hearth devices pair CODE`, `POST /v1/device/activate` hands over the login. The pairing limits
count per client address, so the requests come from loopback addresses 127.0.1.x, a few devices
an address, one request at a time.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from urllib.parse import urlencode

from bench.common import HEARTH, RunningHearth
from mqtt import topics
from mqtt import wake as w
from mqtt.client import Connection, Credentials

FRAME = 1280                    # 40 ms of 16 kHz s16, as a microphone hands it over
PER_ADDRESS = 3                 # devices paired from one loopback address (pairing allows 3 waiting)

Event = tuple[float, str, str, bytes]       # (monotonic time, device id, topic, payload)


def _http(hearth: RunningHearth, source: str, method: str, path: str, body: dict | None = None) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", hearth.web_port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"} if body is not None else {})
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise RuntimeError(f"{method} {path} from {source}: HTTP {answer.status} {data[:300]!r}")
    return json.loads(data)


def pair(hearth: RunningHearth, name: str, index: int) -> Credentials:
    """One satellite paired as a person pairs it; its login (the device id is the user name)."""
    source = f"127.0.1.{index // PER_ADDRESS + 1}"
    state = f"bench-{name}"
    code = _http(hearth, source, "GET", "/v1/device/code?" + urlencode(
        {"state": state, "type": "satellite", "platform": "bench", "name": name}))
    confirm = subprocess.run([HEARTH, "--data", str(hearth.data), "devices", "pair", code["code"]],
                             capture_output=True, text=True, timeout=60)
    if confirm.returncode != 0:
        raise RuntimeError(f"hearth devices pair {code['code']}: {confirm.stderr.strip()}")
    login = _http(hearth, source, "POST", "/v1/device/activate", {"state": state, "token": code["token"]})["mqtt"]
    return Credentials("127.0.0.1", login["port"], login["username"], login["password"])


class Satellite:
    """One device's connection: it hears only its own detections, transcripts and errors."""

    def __init__(self, creds: Credentials, events: list[Event]):
        self.id = creds.username
        self._events = events
        self.conn = Connection(creds, self._on, [w.wake_detected(self.id), topics.stt_final(self.id),
                                                 topics.error(self.id)])
        self.conn.start()

    def _on(self, topic: str, payload: bytes) -> None:
        self._events.append((time.monotonic(), self.id, topic, payload))

    def start(self, stream: str) -> None:
        """A stream start, acknowledged before its first frame (QoS 0 frames can overtake QoS 1 starts)."""
        self.conn.client.publish(w.wake_start(self.id), w.WakeStart(stream=stream).to_payload(), qos=1).wait_for_publish(5)

    def send(self, stream: str, frame: bytes) -> None:
        self.conn.client.publish(w.wake_audio(self.id, stream), frame, qos=0)

    def end(self) -> None:
        self.conn.client.publish(w.wake_end(self.id), w.WakeEnd().to_payload(), qos=1)


class Fleet:
    """The paired satellites; `play` streams their clips in real time from the calling thread."""

    def __init__(self, hearth: RunningHearth, count: int):
        self.events: list[Event] = []
        self.satellites: list[Satellite] = []
        for k in range(count):
            self.satellites.append(Satellite(pair(hearth, f"sat-{k:03d}", k), self.events))

    def play(self, streams: dict[Satellite, bytes], seconds: float, probe: tuple[Satellite, bytes, float]) -> dict[int, float]:
        """Every clip looped in real time; the probe's clip starts at `probe[2]` s. Returns when each
        probe frame went out (frame index -> monotonic time, taken after its publish).

        The probe's stream opens first and streams silence until its clip, as a satellite that has
        been on all along: an overloaded Hearth refuses new streams (`busy`), never the oldest."""
        dev, pcm, start = probe
        dev.start("probe")
        for sat in streams:
            sat.start("bench")
        first = int(start * 32000 / FRAME)
        sent_at: dict[int, float] = {}
        t0 = time.monotonic()
        for k in range(int(seconds * 32000 / FRAME)):
            j = k - first                           # the probe first, so the others' sends do not delay it
            dev.send("probe", (pcm[j * FRAME:(j + 1) * FRAME] if j >= 0 else b"") or b"\0" * FRAME)
            if j >= 0:
                sent_at[j] = time.monotonic()
            for sat, clip in streams.items():
                i = (k * FRAME) % (len(clip) - FRAME)
                sat.send("bench", clip[i:i + FRAME])
            time.sleep(max(0.0, t0 + (k + 1) * FRAME / 32000 - time.monotonic()))
        for sat in [*streams, dev]:
            sat.end()
        return sent_at

    def stop(self) -> None:
        for sat in self.satellites:
            sat.conn.stop()
