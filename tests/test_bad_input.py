"""Bad input over MQTT: each gets a clear error on the device's error topic, and the service keeps
serving the same device and everyone else."""

from __future__ import annotations

import json
import time

import pytest

from appliance.commands import client
from mqtt import topics
from mqtt.messages import Error, SttStart
from conftest import word_error_rate


def errors_until(link, code: str, timeout: float = 10.0) -> Error:
    deadline = time.monotonic() + timeout
    while True:
        item = link.next(deadline)
        if item.topic == topics.error(link.device):
            err = Error.from_payload(item.payload)
            if err.code == code:
                return err


@pytest.mark.parametrize("kind,payload,code", [
    ("stt/start", b"{oops", "bad_json"),
    ("stt/start", b'{"v": 1}', "bad_message"),
    ("stt/start", b'{"v": 7, "session": "s"}', "unsupported_version"),
    ("stt/start", b'{"v": 1, "session": "s", "rate": 7}', "bad_audio_format"),
    ("stt/start", b'{"v": 1, "type": "tts-say", "session": "s"}', "unknown_message"),
    ("stt/end", b'{"v": 1, "session": "never-opened"}', "unknown_session"),
    ("tts/say", b'{"v": 1, "request": "r", "text": ""}', "bad_text"),
    ("tts/say", b'{"v": 1, "request": "r", "text": "hi", "voice": "nobody"}', "unknown_voice"),
    ("tts/say", json.dumps({"v": 1, "request": "r", "text": "word " * 1000}).encode(), "too_large"),
    ("tts/say", b"x" * 20000, "too_large"),
    ("stt/bogus", b"{}", "unknown_message"),
])
def test_bad_message_gets_its_error(device, kind, payload, code):
    link = device()
    link.publish(topics.device(link.device, *kind.split("/")), payload)
    err = errors_until(link, code)
    assert err.message


def test_audio_problems(device, hearth, speech):
    link = device()
    # audio for a session that was never opened: one error, not one per frame
    for _ in range(5):
        link.publish(topics.stt_audio(link.device, "ghost"), b"\0\0" * 320, qos=1)
    err = errors_until(link, "unknown_session")
    assert err.ref == "ghost"
    # a frame that is not whole 16-bit samples, and one over the size limit
    link.publish(topics.stt_start(link.device), SttStart(session="s1").to_payload())
    link.publish(topics.stt_audio(link.device, "s1"), b"\0" * 641, qos=1)
    assert errors_until(link, "bad_audio_format").ref == "s1"
    big = hearth.settings.limits.max_frame_bytes + 2
    link.publish(topics.stt_audio(link.device, "s1"), b"\0" * big, qos=1)
    assert errors_until(link, "too_large").ref == "s1"
    # the same device is still served
    text = "Set an alarm for seven in the morning."
    heard = client.transcribe(link, speech(text))
    assert word_error_rate(text, heard.final.text) <= 0.3


def test_too_many_sessions_and_duplicate_ids(device, hearth):
    link = device()
    limit = hearth.settings.limits.max_sessions_per_device
    for i in range(limit):
        link.publish(topics.stt_start(link.device), SttStart(session=f"open{i}").to_payload())
    link.publish(topics.stt_start(link.device), SttStart(session="open0").to_payload())
    assert errors_until(link, "session_exists").ref == "open0"
    link.publish(topics.stt_start(link.device), SttStart(session="one-too-many").to_payload())
    assert errors_until(link, "too_many_sessions").ref == "one-too-many"


@pytest.mark.own_hearth
@pytest.mark.timing
def test_abandoned_session_times_out_and_frees_its_slot(tmp_path, speech):
    """A device that starts a session and disappears: the session ends with an error, the slot is freed."""
    from conftest import Hearth, make_settings
    h = Hearth(make_settings(tmp_path, limits={"session_idle_timeout_s": 1.0, "max_sessions_per_device": 1})).start()
    try:
        link = h.device("quitter")
        link.publish(topics.stt_start("quitter"), SttStart(session="gone").to_payload())
        link.publish(topics.stt_audio("quitter", "gone"), b"\0\0" * 1600, qos=1)
        err = errors_until(link, "session_timeout")
        assert err.ref == "gone"
        text = "Turn the radio off."
        heard = client.transcribe(link, speech(text))
        assert word_error_rate(text, heard.final.text) <= 0.3
    finally:
        h.stop()


def test_a_flood_of_garbage_does_not_stop_another_device(device, speech):
    noisy, quiet = device(), device()
    for i in range(300):
        noisy.publish(topics.stt_start(noisy.device), b"\xff\xfe garbage %d" % i, qos=0)
    text = "Play some jazz in the living room."
    heard = client.transcribe(quiet, speech(text))
    assert word_error_rate(text, heard.final.text) <= 0.3
