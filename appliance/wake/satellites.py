"""The satellites room: wires the wake word worker into the service (install(service) is called by
the wiring, appliance/service.py). Device messages arrive on the network thread and are only checked and queued here; the
transcript of a wake session gets a spoken reply from the first responder that has one."""

from __future__ import annotations

import time

from appliance.devices.errors import DeviceError
from appliance.wake import answers
from appliance.voice.utterances import Sweeper
from appliance.wake.models import Catalog
from appliance.wake.review import WakeReview
from appliance.wake.worker import WakeWorker
from mqtt import topics
from mqtt import wake as w
from mqtt.devices import DeviceStatus
from mqtt.messages import ProtocolError, TtsSay

FLOOD_FACTOR = 1.5           # a stream may send audio this much faster than real time ...
FLOOD_BURST_S = 2.0          # ... plus this much at once (reconnect catch-up)
FLOOD_REPORT_S = 5.0         # one too_fast error per device per this many seconds


class FloodGuard:
    """Token bucket per device, on the network thread: a flooding device loses its own frames only."""

    def __init__(self):
        self.buckets: dict[str, list[float]] = {}      # device -> [bytes per s, tokens, last refill, last report]

    def open(self, device: str, bytes_per_s: int) -> None:
        self.buckets[device] = [bytes_per_s * FLOOD_FACTOR, bytes_per_s * FLOOD_BURST_S, time.monotonic(), 0.0]

    def allow(self, device: str, size: int) -> bool | None:
        """True: pass. False: drop and report. None: drop quietly (reported recently)."""
        b = self.buckets.get(device)
        if b is None:
            return True                                # unknown stream: the worker says so
        now = time.monotonic()
        b[1] = min(b[0] / FLOOD_FACTOR * FLOOD_BURST_S, b[1] + (now - b[2]) * b[0])
        b[2] = now
        if b[1] >= size:
            b[1] -= size
            return True
        if now - b[3] >= FLOOD_REPORT_S:
            b[3] = now
            return False
        return None


class Satellites:
    def __init__(self, service):
        self.service = service
        s = service.settings
        self.max_json = s.limits.max_json_bytes
        self.max_frame = s.limits.max_frame_bytes
        self.catalog = Catalog(s.wake)
        self.worker = WakeWorker(s, self.catalog, service.sessions, service.replies, service.metrics, self.group_of)
        self.flood = FloodGuard()
        self.responders = [answers.clock]
        self.worker.on_transcript.append(self._answer)
        service.sessions.observers.append(self._session_event)
        service.speaker.observers.append(self._speaking)

    def group_of(self, device: str, start: w.WakeStart) -> str:
        """Who competes for one wake word: the device's room (registry first, then the stream
        start's `room`; devices without one share the house group), or the whole house."""
        if self.service.settings.wake.arbitration_group == "all":
            return "*"
        return self._registry_room(device) or start.room or "*"

    def _registry_room(self, device: str) -> str:
        devices = getattr(self.service, "devices", None)
        if devices is None:
            return ""
        try:
            return devices.get(device).room
        except DeviceError:
            return ""                  # a login the registry does not know (Hearth's own, tests)

    # network thread
    def on_start(self, device: str, ref: str | None, payload: bytes) -> None:
        msg = w.WakeStart.from_payload(payload, self.max_json)
        w.check_sensitivity(msg)
        self.flood.open(device, msg.audio_format.bytes_per_second)
        self.worker.put("open", device, msg)

    def on_audio(self, device: str, stream: str | None, payload: bytes) -> None:
        if len(payload) > self.max_frame:
            raise ProtocolError("too_large", f"audio frame of {len(payload)} bytes is over the {self.max_frame}-byte limit", stream)
        allowed = self.flood.allow(device, len(payload))
        if allowed:       # stamped here, where it came off the network (appliance/wake/worker.py)
            self.worker.put("audio", device, (stream, payload, time.monotonic()))
            return
        self.service.metrics.inc("hearth_wake_frames_dropped_total")
        if allowed is False:
            raise ProtocolError("too_fast", "audio arrives faster than real time; frames are being dropped", stream)

    def on_status(self, device: str, payload: bytes) -> None:
        """A device's status going offline (its last will, when it uses the registry's) ends its stream."""
        if payload and not DeviceStatus.from_payload(payload, self.max_json).online:
            self.flood.buckets.pop(device, None)
            self.worker.put("close", device, "")

    def on_end(self, device: str, ref: str | None, payload: bytes) -> None:
        msg = w.WakeEnd.from_payload(payload, self.max_json)
        self.flood.buckets.pop(device, None)
        self.worker.put("close", device, msg.stream)

    # other threads
    def _session_event(self, event: str, device: str, session: str, text: str) -> None:   # session thread
        s = self.worker.streams.get(device)
        if s is None or s.session != session:
            return
        if event == "thinking":        # sent here, so it always comes before the transcript
            self.service.replies.send(w.feedback(device), w.Feedback(state="thinking", stream=s.id, session=session))
        else:
            self.worker.put("session", device, (event, session, text))

    def _speaking(self, event: str, device: str, request: str) -> None:
        s = self.worker.streams.get(device)
        if s is not None:
            state = "speaking" if event == "start" else "idle"
            self.service.replies.send(w.feedback(device), w.Feedback(state=state, stream=s.id, session=request))

    def _answer(self, device: str, session: str, text: str) -> None:     # wake thread
        reply = next((r for r in (fn(text) for fn in self.responders) if r), None) if text else None
        s = self.worker.streams.get(device)
        if reply is None:
            if s is not None:
                self.service.replies.send(w.feedback(device), w.Feedback(state="idle", stream=s.id, session=session))
            return
        self.service.speaker.say(device, TtsSay(request=f"{session}-r"[-64:], text=reply))

    def stop(self) -> None:
        self.worker.stop()


def install(service) -> None:
    service.satellites = Satellites(service)
    _install_review(service, service.satellites.worker)
    service.subscriptions += list(w.SUBSCRIPTIONS)
    service.inbound.extra["wake/start"] = service.satellites.on_start
    service.inbound.extra["wake/audio"] = service.satellites.on_audio
    service.inbound.extra["wake/end"] = service.satellites.on_end
    service._stoppers.insert(0, service.satellites.stop)
    # a device has one MQTT will: the registry's status will (online: false) ends streams too
    status = service.inbound.extra.get("status")

    def on_status(device: str, ref: str | None, payload: bytes) -> None:
        service.satellites.on_status(device, payload)
        if status is not None:
            status(device, ref, payload)

    service.inbound.extra["status"] = on_status
    service.subscriptions += [t for t in (topics.device("+", "status"),) if t not in service.subscriptions]


def _install_review(service, worker: WakeWorker) -> None:
    """service.wake_review (appliance/wake/review.py), fed by the session manager's finals; swept
    for retention as utterances are."""
    review = WakeReview(service.settings.data_dir / "wake-review", lambda: service.settings.privacy, service.disk,
                        worker.woken, lambda device: device in worker.streams)
    service.wake_review = review
    service.sessions.on_final.append(review.on_final)
    sweeper = Sweeper(review)
    sweeper.start()
    service._stoppers.append(sweeper.stop)
