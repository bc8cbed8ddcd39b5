"""Hermes compatibility driven by `rhasspy-hermes` messages over a real Mosquitto, as a satellite would.

The satellite logs in with the dedicated Hermes account (what `hearth hermes enable` prints).
"""

from __future__ import annotations

import io
import json
import time
import wave

import pytest
from rhasspyhermes.asr import AsrStartListening, AsrStopListening, AsrTextCaptured
from rhasspyhermes.audioserver import AudioFrame, AudioPlayFinished
from rhasspyhermes.tts import TtsSay, TtsSayFinished

from appliance.commands import cli

from appliance.state import config
from appliance.compat import hermes_account
from compat_kit import Satellite
from conftest import word_error_rate
from mqtt.client import Connection

COMMAND = "Turn on the kitchen lights and set a timer for ten minutes."


@pytest.fixture
def satellite(compat_hearth):
    sat = Satellite(compat_hearth)
    yield sat
    sat.close()


def on(topic: str, **fields):
    def match(t, payload):
        if t != topic:
            return False
        body = json.loads(payload)
        return all(body.get(k) == v for k, v in fields.items())
    return match


def test_spoken_command_comes_back_as_text_with_stop_on_silence(satellite, speech):
    satellite.send(AsrStartListening(site_id="kitchen", session_id="s-1", stop_on_silence=True,
                                     wakeword_id="hey_mycroft"))
    satellite.stream("kitchen", speech(COMMAND, pad_ms=1500), realtime=True)   # no stopListening: the VAD ends it
    _, payload = satellite.expect(on("hermes/asr/textCaptured", siteId="kitchen"))
    captured = AsrTextCaptured.from_json(payload)
    assert captured.session_id == "s-1" and captured.wakeword_id == "hey_mycroft"
    assert word_error_rate(COMMAND, captured.text) <= 0.25, captured.text
    assert captured.likelihood > 0


def test_stop_listening_ends_the_utterance(satellite, speech):
    text = "What is the weather like tomorrow morning"
    satellite.send(AsrStartListening(site_id="hall", session_id="s-2", stop_on_silence=False))
    satellite.stream("hall", speech(text, voice="espeak", rate=22050))    # another voice, another rate
    satellite.send(AsrStopListening(site_id="hall", session_id="s-2"))
    _, payload = satellite.expect(on("hermes/asr/textCaptured", siteId="hall", sessionId="s-2"))
    assert word_error_rate(text, AsrTextCaptured.from_json(payload).text) <= 0.35


def test_say_comes_back_as_audio_then_say_finished(satellite):
    satellite.send(TtsSay(text="Hello from Hearth. Your timer is set.", site_id="den", id="req-1", session_id="d1"))
    topic, wav = satellite.expect(lambda t, p: t.startswith("hermes/audioServer/den/playBytes/"))
    assert topic == "hermes/audioServer/den/playBytes/req-1"
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getframerate() == 22050 and w.getsampwidth() == 2 and w.getnchannels() == 1
        assert 1.0 < w.getnframes() / w.getframerate() < 8.0
    satellite.nothing_matching(on("hermes/tts/sayFinished", id="req-1"), 0.5)   # it waits for playFinished
    satellite.send(AudioPlayFinished(id="req-1", session_id="d1"), site_id="den")
    _, payload = satellite.expect(on("hermes/tts/sayFinished", id="req-1"))
    finished = TtsSayFinished.from_json(payload)
    assert finished.site_id == "den" and finished.session_id == "d1"


@pytest.mark.parametrize("topic,payload,service,needle", [
    ("hermes/asr/startListening", b"{not json", "asr", "not JSON"),
    ("hermes/asr/startListening", b'{"siteId": 7}', "asr", "siteId"),
    ("hermes/asr/startListening", b'{"siteId": "a", "stopOnSilence": "yes"}', "asr", "stopOnSilence"),
    ("hermes/tts/say", b'{"siteId": "a"}', "tts", "'text' is required"),
    ("hermes/tts/say", b'{"siteId": "a", "text": "   "}', "tts", "empty"),
    ("hermes/audioServer/a/playFinished", b"[1]", "audioServer", "JSON object"),
])
def test_malformed_payloads_get_a_hermes_error(satellite, topic, payload, service, needle):
    satellite.publish(topic, payload)
    _, body = satellite.expect(lambda t, p: t == f"hermes/error/{service}")
    assert needle in json.loads(body)["error"]


def test_wrong_wav_chunks_get_one_error_and_other_sites_keep_being_served(satellite, speech):
    satellite.send(AsrStartListening(site_id="garage", session_id="bad", stop_on_silence=False))
    for _ in range(5):
        satellite.send(AudioFrame(wav_bytes=b"\x01\x02" * 256), site_id="garage")            # raw PCM, no WAV header
    _, body = satellite.expect(on("hermes/error/asr", siteId="garage"))
    assert json.loads(body)["sessionId"] == "bad" and "WAV" in json.loads(body)["error"]
    eight_bit = io.BytesIO()
    with wave.open(eight_bit, "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(16000), w.writeframes(b"\x80" * 512)
    satellite.send(AudioFrame(wav_bytes=eight_bit.getvalue()), site_id="garage")
    satellite.nothing_matching(on("hermes/error/asr", siteId="garage"), 1.0)   # one error per listen, not per frame
    # meanwhile another site is served as usual
    satellite.send(AsrStartListening(site_id="attic", session_id="good", stop_on_silence=False))
    satellite.stream("attic", speech(COMMAND))
    satellite.send(AsrStopListening(site_id="attic", session_id="good"))
    _, payload = satellite.expect(on("hermes/asr/textCaptured", siteId="attic"))
    assert word_error_rate(COMMAND, AsrTextCaptured.from_json(payload).text) <= 0.25


def test_hermes_login_is_confined_to_hermes_topics(compat_hearth, satellite):
    """The shared Hermes login must not read Hearth's own device topics (only the public server info)."""
    spy = Connection(satellite.conn.creds, lambda t, p: satellite.inbox.put((t, p)), ["hearth/#"],
                     client_id="spy").start()
    link = compat_hearth.device("confined-device")
    try:
        link.conn.publish(f"hearth/{link.device}/tts/say",
                          json.dumps({"v": 1, "request": "r1", "text": "Only for this device."}))
        link.inbox.get(timeout=30)         # the device hears its reply begin...
        # ...the Hermes login hears nothing of it; what it may read (the retained server info)
        # does reach it through the same subscription, so it was listening
        seen = satellite.nothing_matching(lambda t, p: t.startswith("hearth/") and not t.startswith("hearth/server/"), 3.0)
        assert "hearth/server/info" in seen
    finally:
        link.__exit__(None, None, None)
        spy.stop()


def test_hermes_enable_prints_the_login_and_switches_the_mode_on(tmp_path, capsys):
    (tmp_path / "hearth.toml").write_text("# my comment\n[broker]\nport = 1999\n")
    assert cli.main(["--data", str(tmp_path), "hermes", "show"]) == 0
    assert "off" in capsys.readouterr().out
    assert cli.main(["--data", str(tmp_path), "hermes", "enable"]) == 0
    out = capsys.readouterr()
    login = hermes_account.ensure_login(tmp_path)
    assert out.out.strip().startswith(f"mqtt://{login.username}:")
    assert out.out.strip().endswith(":1999") and login.password in out.out
    assert "trusted LAN" in out.err
    text = (tmp_path / "hearth.toml").read_text()
    assert "# my comment" in text and "[hermes]\nenabled = true" in text
    assert cli.main(["--data", str(tmp_path), "hermes", "disable"]) == 0
    assert "enabled = false" in (tmp_path / "hearth.toml").read_text()
    accounts = hermes_account.broker_accounts(config.load(None, tmp_path))
    assert accounts == []


def test_streamed_hey_mycroft_is_detected(satellite, speech):
    from rhasspyhermes.wake import HotwordDetected
    satellite.stream("porch", speech("Hey Mycroft", pad_ms=1000))
    topic, payload = satellite.expect(lambda t, p: t.startswith("hermes/hotword/") and t.endswith("/detected"))
    assert topic == "hermes/hotword/hey_mycroft/detected"
    detected = HotwordDetected.from_json(payload)
    assert detected.site_id == "porch" and detected.model_id == "hey_mycroft"


def test_toggled_off_site_detects_nothing(satellite, speech):
    satellite.publish("hermes/hotword/toggleOff", json.dumps({"siteId": "quiet-room"}))
    time.sleep(0.3)
    wav = speech("Hey Mycroft", pad_ms=1000)
    satellite.stream("quiet-room", wav)
    satellite.stream("loud-room", wav)          # positive control: the same audio on a site that is on
    def detected_at(site):
        return lambda t, p: t.endswith("/detected") and json.loads(p)["siteId"] == site
    satellite.expect(detected_at("loud-room"), timeout=30, forbid=detected_at("quiet-room"))
    satellite.nothing_matching(detected_at("quiet-room"), 1.0)
    satellite.publish("hermes/hotword/toggleOn", json.dumps({"siteId": "quiet-room"}))


def test_every_hermes_message_round_trips_and_reads_rhasspy_payloads():
    from mqtt import hermes as h
    for cls in h.all_hermes_classes():
        msg = cls(site_id="s1") if cls is not h.TtsSay else cls(text="Hi.", site_id="s1")
        assert cls.from_payload(msg.to_payload()) == msg
    ours = h.AsrStartListening.from_payload(AsrStartListening(site_id="k", session_id="x", stop_on_silence=False,
                                                              wakeword_id="alexa").payload())
    assert (ours.site_id, ours.session_id, ours.stop_on_silence, ours.wakeword_id) == ("k", "x", False, "alexa")
    theirs = AsrTextCaptured.from_json(h.AsrTextCaptured(text="on", seconds=0.5, site_id="k").to_payload())
    assert (theirs.text, theirs.site_id, theirs.seconds) == ("on", "k", 0.5)
