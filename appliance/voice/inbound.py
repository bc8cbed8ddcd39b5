"""Where audio (and every other device message) enters: the MQTT handler.

Runs on paho's network thread, so it only parses the topic, decodes and validates the payload and
hands it to the owner (session manager, speaker). Any ProtocolError goes back on the device's
error topic; nothing a device sends can stop the service.
"""

from __future__ import annotations

import logging
import time

from appliance.process.metrics import Metrics
from appliance.voice.outbound import Replies
from appliance.voice.sessions import SessionManager
from appliance.state.storage import StorageError
from appliance.tts.speaker import Speaker
from mqtt import topics
from mqtt.messages import ProtocolError, SttEnd, SttStart, TtsSay

log = logging.getLogger(__name__)


class Inbound:
    def __init__(self, sessions: SessionManager, speaker: Speaker, replies: Replies, metrics: Metrics,
                 max_json_bytes: int):
        self.sessions = sessions
        self.speaker = speaker
        self.replies = replies
        self.metrics = metrics
        self.max_json = max_json_bytes
        self.extra: dict[str, object] = {}     # kind -> handler(device, ref, payload), for other rooms
        self.foreign: dict[str, object] = {}   # topic prefix -> handler(topic, payload), other protocols (Hermes)

    def __call__(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is None:
            for prefix, handler in self.foreign.items():
                if topic.startswith(prefix):
                    handler(topic, payload)
            return
        self.metrics.inc("hearth_mqtt_messages_total")
        try:
            match parsed.kind:
                case "stt/audio":
                    self.sessions.audio(parsed.device, parsed.ref, payload)
                case "stt/start":
                    self.sessions.start(parsed.device, SttStart.from_payload(payload, self.max_json))
                case "stt/end":
                    self.sessions.end(parsed.device, SttEnd.from_payload(payload, self.max_json).session)
                case "tts/say":
                    self.speaker.say(parsed.device, TtsSay.from_payload(payload, self.max_json))
                case kind if kind in self.extra:
                    self.extra[kind](parsed.device, parsed.ref, payload)
                case kind if kind in topics.OUTBOUND_KINDS or kind.split("/")[0] not in ("stt", "tts"):
                    return        # our own replies echoing back, or another room's topic
                case kind:
                    raise ProtocolError("unknown_message", f"'{kind}' is not a message Hearth accepts "
                                        "(see docs/protocol.md)")
        except ProtocolError as exc:
            self.metrics.error(time.time(), f"{parsed.device}: {exc.code}")
            self.replies.error(parsed.device, exc)
        except StorageError as exc:          # e.g. a status the registry could not save: data disk full
            self.metrics.error(time.time(), f"{parsed.device}: {exc.code}")
            self.replies.error(parsed.device, ProtocolError(exc.code, str(exc), parsed.ref))
