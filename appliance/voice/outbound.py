"""Where the reply leaves: every message Hearth sends to a device goes through Replies."""

from __future__ import annotations

import logging

from mqtt import topics
from mqtt.messages import Error, Message, ProtocolError

log = logging.getLogger(__name__)


class Replies:
    """Publishes typed messages on a device's topics through one MQTT connection."""

    def __init__(self, publish):
        self._publish = publish          # (topic, payload, qos, retain) -> None

    def send(self, topic: str, message: Message, qos: int = 1, retain: bool = False) -> None:
        self._publish(topic, message.to_payload(), qos, retain)

    def audio(self, topic: str, pcm: bytes) -> None:
        self._publish(topic, pcm, 1, False)

    def error(self, device: str, exc: ProtocolError) -> None:
        log.info("error to %s: %s %s", device, exc.code, exc.message)
        self.send(topics.error(device), Error.of(exc))
