"""Small replies leave at once: TCP_NODELAY on Hearth's MQTT sockets and in Mosquitto's config.
Without it an `stt/end` for an unknown session (no engine work) took 43-45 ms (Nagle + delayed
ACK); now it is close to an MQTT echo through the same broker."""

from __future__ import annotations

import socket
import statistics
import time
import uuid

from mqtt import topics
from mqtt.messages import Error, SttEnd


def _answer(link, send, match) -> float:
    t0 = time.perf_counter()
    send()
    deadline = time.monotonic() + 5
    while True:
        item = link.next(deadline)
        if match(item):
            return time.perf_counter() - t0


def test_small_replies_are_not_held_back(hearth, device):
    assert hearth.service.conn.client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert "set_tcp_nodelay true" in hearth.broker.config.conf.read_text()
    link = device("nodelay")
    echo_topic = topics.device(link.device, "echo")

    def stt_end():
        session = uuid.uuid4().hex[:10]
        return _answer(link, lambda: link.publish(topics.stt_end(link.device), SttEnd(session=session).to_payload()),
                       lambda it: it.topic == topics.error(link.device) and Error.from_payload(it.payload).ref == session)

    def echo():
        return _answer(link, lambda: link.publish(echo_topic, b"x"), lambda it: it.topic == echo_topic)

    ends, echoes = [], []
    for _ in range(15):                 # alternate, so load on the machine hits both alike
        ends.append(stt_end())
        echoes.append(echo())
        time.sleep(0.02)
    end_ms, echo_ms = statistics.median(ends) * 1000, statistics.median(echoes) * 1000
    print(f"stt/end unknown session p50 {end_ms:.1f} ms, echo p50 {echo_ms:.2f} ms")
    assert end_ms < echo_ms + 25, (end_ms, echo_ms)        # Nagle + delayed ACK costs ~40 ms
