"""One reconnecting MQTT client used by the service (and by `hearth client`).

paho's network thread only hands messages to `on_message`; the handler must decode, validate and
enqueue, never do heavy work. After a broker restart paho reconnects by itself (backoff 0.2-5 s)
and `on_connect` subscribes again.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)


class MqttError(RuntimeError):
    """The broker could not be reached or refused us."""


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    username: str
    password: str
    ca_file: str = ""                # TLS: the CA certificate (PEM file) that signed the broker's certificate

    def url(self) -> str:
        return f"{'mqtts' if self.ca_file else 'mqtt'}://{self.host}:{self.port}"


Handler = Callable[[str, bytes], None]


def _no_delay(client, userdata, sock) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Connection:
    def __init__(
        self,
        creds: Credentials,
        on_message: Handler,
        subscriptions: Iterable[str] = (),
        client_id: str | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        on_connected: Callable[[], None] | None = None,
        read_qos: int = 1,
        on_refused: Callable[[str], None] | None = None,
        on_retained: Callable[[str, bytes], bool] | None = None,
    ):
        self.creds = creds
        self._handler = on_message
        self._subs = list(subscriptions)
        self._read_qos = read_qos         # QoS of a subscription given as a bare topic
        self._on_connected = on_connected
        self._on_refused = on_refused     # fn(reason) when the broker refuses a (re)connect (network thread)
        self._on_retained = on_retained   # a retained message goes here first; True: it was handled
        self.connected = threading.Event()
        self._refused: str | None = None
        self._stopping = False
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"hearth-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        self.client.username_pw_set(creds.username, creds.password)
        if creds.ca_file:
            self.client.tls_set(ca_certs=creds.ca_file)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=5)
        self.client.max_queued_messages_set(10000)
        if will:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self.client.on_socket_open = _no_delay      # replies are small: no Nagle wait (~40 ms)

    # paho callbacks (network thread)
    def _connected(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
            log.warning("broker refused the connection: %s", reason_code)
            if self._on_refused:
                self._on_refused(self._refused)
            return
        self._refused = None
        for entry in self._subs:      # a topic (at read_qos), or (topic, qos)
            topic, qos = entry if isinstance(entry, tuple) else (entry, self._read_qos)
            client.subscribe(topic, qos=qos)
        self.connected.set()
        log.debug("connected to %s", self.creds.url())
        if self._on_connected:
            self._on_connected()

    def _disconnected(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self._stopping:
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _message(self, client, userdata, msg):
        try:
            if msg.retain and self._on_retained is not None and self._on_retained(msg.topic, msg.payload):
                return
            self._handler(msg.topic, msg.payload)
        except Exception:  # a handler bug must not kill the network thread
            log.exception("handler failed for %s", msg.topic)

    # public
    def start(self, wait: float = 10.0) -> "Connection":
        try:
            self.client.connect(self.creds.host, self.creds.port, keepalive=30)
        except OSError as exc:
            raise MqttError(f"cannot reach the broker at {self.creds.url()}: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(wait):
            self.client.loop_stop()
            why = self._refused or "no answer"
            raise MqttError(f"broker at {self.creds.url()} did not accept us within {wait:.0f} s ({why})")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subs.append(topic)
        self.client.subscribe(topic, qos=qos)

    def unsubscribe(self, topic: str) -> None:
        self._subs = [s for s in self._subs if s != topic and not (isinstance(s, tuple) and s[0] == topic)]
        self.client.unsubscribe(topic)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
