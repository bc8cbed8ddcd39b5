"""Who is online, and over which listener: from retained status messages and the broker's log.

A device's `status` message (retained, with its last will saying `online: false`) sets online and
last seen. Whether it came over TLS or plain MQTT only the broker knows: Mosquitto logs
"New connection from ADDR:PORT on port LISTENER." and then "New client connected from ADDR:PORT
as CLIENT (..., u'USER')."; BrokerLog follows the log and pairs the two lines.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from appliance.devices.registry import Registry
from mqtt.devices import DeviceStatus

log = logging.getLogger(__name__)

NEW_CONNECTION = re.compile(r"New connection from (\S+) on port (\d+)\.")
NEW_CLIENT = re.compile(r"New client connected from (\S+) as .* u'([^']+)'\)")


class BrokerLog:
    """Follows mosquitto.log: which listener port each user last connected through."""

    def __init__(self, path: Path, tls_port: int):
        self.path = path
        self.tls_port = tls_port
        self._offset = 0
        self._ports: dict[str, int] = {}        # "addr:port" -> listener port
        self.transport: dict[str, str] = {}     # user -> tls | plain
        self._lock = threading.Lock()

    def scan(self) -> dict[str, str]:
        with self._lock:
            try:
                size = self.path.stat().st_size
                if size < self._offset:        # the log was rotated or truncated
                    self._offset = 0
                with self.path.open("rb") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
            except FileNotFoundError:
                return dict(self.transport)
            end = chunk.rfind(b"\n") + 1
            self._offset += end
            for line in chunk[:end].decode(errors="replace").splitlines():
                if m := NEW_CONNECTION.search(line):
                    self._ports[m.group(1)] = int(m.group(2))
                elif m := NEW_CLIENT.search(line):
                    port = self._ports.pop(m.group(1), None)
                    if port is not None:
                        self.transport[m.group(2)] = "tls" if port == self.tls_port else "plain"
            return dict(self.transport)


class Presence:
    def __init__(self, registry: Registry, broker_log: BrokerLog, max_json: int, defer=None):
        self.registry = registry
        self.broker_log = broker_log
        self.max_json = max_json
        # defer(key, fn): where the registry write runs (the service's chores thread, newest per device)
        self.defer = defer or (lambda key, fn: fn())

    def on_status(self, device: str, payload: bytes) -> None:
        """A device's retained status (or its last will). Empty payload: a cleared retained message.
        Checked here (on the network thread); written to the registry by `defer`."""
        if not payload:
            return
        msg = DeviceStatus.from_payload(payload, self.max_json)    # ProtocolError goes to the device
        self.defer(("status", device), lambda: self._record(device, msg))

    def _record(self, device: str, msg: DeviceStatus) -> None:
        facts = {k: v for k, v in (("firmware", msg.firmware), ("platform", msg.platform)) if v}
        if msg.online:
            transport = self.broker_log.scan().get(device)
            if transport:
                facts["transport"] = transport
        self.registry.touch(device, online=msg.online, **facts)

