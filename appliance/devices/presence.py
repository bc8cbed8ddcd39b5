"""Who is online, and over which listener: from retained status messages and the broker's log.

A device's `status` message (retained, with its last will saying `online: false`) sets online and
last seen. Whether it came over TLS or plain MQTT only the broker knows: Mosquitto logs
"New connection from ADDR:PORT on port LISTENER." and then "New client connected from ADDR:PORT
as CLIENT (..., u'USER')."; the broker's log pump pairs the two lines in memory
(mqtt/broker_log.py) and BrokerLog reads the result.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from appliance.devices.registry import Registry
from mqtt.devices import DeviceStatus

log = logging.getLogger(__name__)


class BrokerLog:
    """Which listener port each login last connected through, as the broker's log pump saw it.

    Mosquitto's log is read through a pipe by whoever runs the broker (`hearth run` or `hearth
    broker`, mqtt/broker_log.py), which keeps "login -> listener port" in `transports.json` and
    never writes the connection lines themselves to disk.
    """

    def __init__(self, path: Path, tls_port: int):
        self.path = path
        self.tls_port = tls_port
        self._stamp: tuple[int, int] | None = None
        self.transport: dict[str, str] = {}     # user -> tls | plain
        self._lock = threading.Lock()

    def scan(self) -> dict[str, str]:
        with self._lock:
            try:
                st = self.path.stat()
                if (st.st_mtime_ns, st.st_size) != self._stamp:
                    ports = json.loads(self.path.read_text())
                    self.transport = {user: "tls" if port == self.tls_port else "plain" for user, port in ports.items()}
                    self._stamp = (st.st_mtime_ns, st.st_size)
            except (FileNotFoundError, ValueError, AttributeError):
                pass                # not written yet, or caught mid-replace: keep what we knew
            return dict(self.transport)


TRANSPORT_RECHECK_S = 0.5


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
            else:
                # the broker's log line may still be on its way through the pipe (a device publishes
                # its status right after connecting): look once more in a moment
                timer = threading.Timer(TRANSPORT_RECHECK_S, self._transport_later, args=(device,))
                timer.daemon = True
                timer.start()
        self.registry.touch(device, online=msg.online, **facts)

    def _transport_later(self, device: str) -> None:
        transport = self.broker_log.scan().get(device)
        if transport:
            self.defer(("transport", device), lambda: self.registry.touch(device, transport=transport))

