"""Mosquitto restarts under a running service: it reconnects and resubscribes by itself, a session in
flight completes or ends with an error, and nothing hangs."""

from __future__ import annotations

import pytest

import time

from appliance.commands import client
from mqtt import topics
from mqtt.messages import Error, SttEnd, SttFinal, SttStart
from conftest import Hearth, make_settings, word_error_rate

pytestmark = pytest.mark.own_hearth


def test_service_survives_a_broker_restart(tmp_path, speech):
    h = Hearth(make_settings(tmp_path, limits={"session_idle_timeout_s": 3.0})).start()
    try:
        link = h.device("survivor")
        text = "Remind me to water the plants."
        wav = speech(text)
        # a session in flight when the broker goes away
        link.publish(topics.stt_start("survivor"), SttStart(session="inflight").to_payload())
        half = len(wav.pcm) // 4 * 2          # whole 16-bit samples
        link.publish(topics.stt_audio("survivor", "inflight"), wav.pcm[:half], qos=1)
        time.sleep(0.3)
        h.broker.stop()
        assert not h.service.conn.connected.wait(0.5) or not h.service.conn.connected.is_set()
        h.broker.start()
        assert h.service.conn.connected.wait(15), "the service did not reconnect"
        assert link.conn.connected.wait(15), "the device did not reconnect"
        link.publish(topics.stt_audio("survivor", "inflight"), wav.pcm[half:], qos=1)
        link.publish(topics.stt_end("survivor"), SttEnd(session="inflight").to_payload())
        # the in-flight session either completes or ends with an error message, within bounds
        deadline = time.monotonic() + 20
        outcome = None
        while outcome is None:
            item = link.next(deadline)
            if item.topic == topics.stt_final("survivor") and SttFinal.from_payload(item.payload).session == "inflight":
                outcome = "final"
            elif item.topic == topics.error("survivor") and Error.from_payload(item.payload).ref == "inflight":
                outcome = Error.from_payload(item.payload).code
        assert outcome in ("final", "session_timeout", "unknown_session")
        # and new work is served as before
        heard = client.transcribe(link, wav)
        assert word_error_rate(text, heard.final.text) <= 0.3
        spoken = client.say(link, "Back again.")
        assert spoken.pcm
    finally:
        h.stop()
