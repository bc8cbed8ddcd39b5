"""Retained messages a device may keep: only those the protocol retains, each small.

The ACL lets a device write anything under `hearth/<device>/`, retained included, and Mosquitto keeps
every retained message in memory and in mosquitto.db (200 of 1 MB from one device: broker memory
10 -> 201 MiB, mosquitto.db 0 -> 190 MiB). Every `SWEEP_EVERY_S` the service's report connection
subscribes to `hearth/#` for a moment: the broker hands it every retained message (flagged retained,
MQTT 3.1.1), and each one that no protocol table marks retained, or that is larger than
`[limits] max_json_bytes` (256 KiB on the service's own retained topics), is cleared (an empty retained message on its topic) and counted in
`hearth_retained_cleared_total`. Live messages seen meanwhile are ignored.
"""

from __future__ import annotations

import logging
import re
import threading

from mqtt.messages import all_topics

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 30.0
LISTEN_S = 2.0
SWEEP_TOPIC = "hearth/#"


def _pattern(topic: str) -> re.Pattern:
    return re.compile("^" + "/".join("[^/]+" if part.startswith("<") else re.escape(part)
                                     for part in topic.split("/")) + "$")


SERVICE_MAX_BYTES = 256 << 10      # what the service itself retains (settings, firmware offers with notes)
# the protocol's retained topics, each with its size limit (None: the device's, [limits] max_json_bytes)
RETAINED = [(_pattern(t), SERVICE_MAX_BYTES if direction.startswith("hearth ->") else None)
            for t, (direction, _, retained, _) in all_topics().items() if retained]


def keep(topic: str, size: int, max_bytes: int) -> bool:
    """A retained message the protocol has (status, settings, offers, ...), and small."""
    return any(p.match(topic) and size <= (limit or max_bytes) for p, limit in RETAINED)


class Sweeper:
    def __init__(self, publish, metrics, max_bytes: int):
        self.connection = None              # the service's report connection (it reads, never writes)
        self.publish = publish              # the service's own connection: it may clear any topic
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.sweeping = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retained-sweep", daemon=True)

    def on_retained(self, topic: str, payload: bytes) -> bool:
        """A retained message (report connection's thread): True when it was the sweep's to handle."""
        if not self.sweeping.is_set() or not topic.startswith("hearth/"):
            return False
        if payload and not keep(topic, len(payload), self.max_bytes):
            self.publish(topic, b"", 1, True)
            self.metrics.inc("hearth_retained_cleared_total")
            log.info("cleared a retained message no device may keep: %s (%d bytes)", topic, len(payload))
        return True

    def sweep(self) -> None:
        self.sweeping.set()
        try:
            self.connection.subscribe(SWEEP_TOPIC, qos=0)
            self._stop.wait(LISTEN_S)
            self.connection.unsubscribe(SWEEP_TOPIC)
        finally:
            self._stop.wait(0.2)            # what was on its way before the unsubscribe took effect
            self.sweeping.clear()

    def _run(self) -> None:
        while not self._stop.wait(SWEEP_EVERY_S):
            try:
                self.sweep()
            except Exception:
                log.exception("sweeping retained messages failed")

    def start(self, connection) -> None:
        self.connection = connection
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
