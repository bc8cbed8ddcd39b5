"""Satellites over a real Mosquitto with the real wake word models, VAD and STT: a streamed
"Hey Mycroft" + command gets a detection, a transcript and a spoken reply on that device; only the
louder of two devices answers; bad streams are refused without disturbing the others."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from appliance.commands import satellite
from appliance.audio.pcm import Wav, read_wav, wav_bytes
from appliance.commands.client import DeviceLink
from conftest import word_error_rate
from mqtt import wake as w
from mqtt.messages import Error

WAKE = "Hey Mycroft, what time is it?"


def lead(wav: Wav, seconds: float) -> Wav:
    """Room silence before the speech, as a satellite that has been streaming for a while."""
    return Wav(b"\0" * int(wav.format.bytes_per_second * seconds) + wav.pcm, wav.format)


def silence(seconds: float) -> Wav:
    return read_wav(wav_bytes(b"\0\0" * int(16000 * seconds), 16000))


def test_wake_word_then_command_gets_transcript_and_reply(device, speech):
    link = device()
    heard = satellite.run(link, lead(speech(WAKE), 1.0), room="kitchen")
    detected = heard.of("detected")
    assert len(detected) == 1 and detected[0].model == "hey_mycroft" and detected[0].score >= 0.5
    finals = heard.of("final")
    assert len(finals) == 1 and finals[0].endpoint == "vad"
    assert word_error_rate("what time is it", finals[0].text) <= 0.34, finals[0].text
    assert "mycroft" not in finals[0].text.lower()          # the session starts after the wake word
    assert heard.of("tts-end") and heard.reply_audio > 0    # the reply came to this device
    assert heard.feedback == ["idle", "wake", "listening", "thinking", "speaking", "idle"]
    assert not heard.of("error") and not heard.of("stand-down")


def test_stream_without_the_wake_word_is_not_detected(device, speech):
    heard = satellite.run(device(), speech("Turn on the kitchen lights and set a timer for ten minutes."))
    assert not heard.of("detected") and not heard.of("final")
    assert heard.feedback == ["idle"]


def test_micro_wake_word_engine_per_device(device, speech):
    """Each device picks its engine: the one it asked for is the one that hears the wake word."""
    results = {}
    links = {engine: device() for engine in ("microwakeword", "openwakeword")}

    def run(engine):
        results[engine] = satellite.run(links[engine], lead(speech(WAKE), 0.5), engine=engine, model="hey_mycroft",
                                        room=f"engine-{engine}")      # own rooms: no arbitration between them

    threads = [threading.Thread(target=run, args=(e,)) for e in ("microwakeword", "openwakeword")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for engine, heard in results.items():
        detected = heard.of("detected")
        assert len(detected) == 1 and detected[0].engine == engine, (engine, heard.events)
        assert heard.of("final"), heard.events


def test_only_the_louder_device_answers(device, speech):
    near, far = device(), device()
    loud, quiet = speech(WAKE, gain=1.0), speech(WAKE, gain=0.3)
    results = {}

    def go(name, link, wav):
        results[name] = satellite.run(link, lead(wav, 1.0), room="living-room")

    threads = [threading.Thread(target=go, args=("near", near, loud)), threading.Thread(target=go, args=("far", far, quiet))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results["near"].of("detected") and results["far"].of("detected")
    assert results["near"].of("final") and not results["near"].of("stand-down")
    downs = results["far"].of("stand-down")
    assert len(downs) == 1 and downs[0].winner == near.device
    assert not results["far"].of("final") and "listening" not in results["far"].feedback


def errors_of(link: DeviceLink, wait: float = 1.0) -> list[Error]:
    out, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            item = link.inbox.get(timeout=0.05)
        except Exception:
            continue
        if item.topic.endswith("/error"):
            out.append(Error.from_payload(item.payload))
    return out


def test_bad_streams_get_errors_and_others_keep_working(device, speech):
    bad = device()
    bad.publish(w.wake_start(bad.device), b'{"v": 1, "stream": "s1", "model": "hey_nobody"}')
    bad.publish(w.wake_start(bad.device), b'{"v": 1, "stream": "s1", "sensitivity": 3}')
    bad.publish(w.wake_audio(bad.device, "nope"), b"\0" * 640, qos=0)
    bad.publish(w.wake_start(bad.device), w.WakeStart(stream="s2").to_payload())
    bad.publish(w.wake_audio(bad.device, "s2"), b"\0" * 641, qos=0)          # not whole samples
    for _ in range(100):                                                    # ten seconds of audio at once
        bad.publish(w.wake_audio(bad.device, "s2"), b"\0" * 3200, qos=0)
    codes = {e.code for e in errors_of(bad, 2.0)}
    assert {"unknown_model", "bad_message", "unknown_stream", "bad_audio_format", "too_fast"} <= codes
    # meanwhile a well-behaved satellite is served as usual
    heard = satellite.run(device(), lead(speech(WAKE), 0.5))
    assert heard.of("final") and not heard.of("error")


def test_last_will_ends_a_vanished_stream(hearth, speech):
    creds = hearth.credentials("will-sat")
    link = DeviceLink(creds, will=satellite.last_will("will-sat")).__enter__()
    link.publish(w.wake_start("will-sat"), w.WakeStart(stream="lw").to_payload())
    link.publish(w.wake_audio("will-sat", "lw"), b"\0" * 3200, qos=0)
    worker = hearth.service.satellites.worker
    deadline = time.monotonic() + 5
    while "will-sat" not in worker.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "will-sat" in worker.streams
    link.conn.client._sock.close()                  # the device drops off the network: no DISCONNECT
    deadline = time.monotonic() + 60
    while "will-sat" in worker.streams and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "will-sat" not in worker.streams
    link.conn.client.loop_stop()


def test_satellite_command_prints_detection_transcript_and_reply(hearth, speech, tmp_path):
    creds = hearth.credentials("cli-sat")
    wav = tmp_path / "hey.wav"
    wav.write_bytes(wav_bytes(lead(speech(WAKE), 0.5).pcm, 16000))
    url = f"mqtt://{creds.username}:{creds.password}@127.0.0.1:{creds.port}"
    out = subprocess.run([sys.executable, "-m", "appliance.commands.cli", "client", "satellite", "--wav", str(wav),
                          "--broker", url, "--room", "study"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "feedback: idle"
    assert any(line.startswith("wake word hey_mycroft detected (score") for line in lines), out.stdout
    assert any(line.startswith("transcript: 'What time is it") for line in lines), out.stdout
    assert "reply audio ends" in out.stdout and lines[-1].startswith("reply: ")


def test_satellite_command_reports_a_missing_file():
    out = subprocess.run([sys.executable, "-m", "appliance.commands.cli", "client", "satellite", "--wav", "/nonexistent.wav",
                          "--broker", "mqtt://x:y@127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("Error: ")


def test_status_offline_will_also_ends_the_stream(hearth, device):
    """A device whose one MQTT will is the registry's status (online: false) loses its stream too."""
    link = device()
    link.publish(w.wake_start(link.device), w.WakeStart(stream="st").to_payload())
    link.publish(w.wake_audio(link.device, "st"), b"\0" * 3200, qos=0)
    worker = hearth.service.satellites.worker
    deadline = time.monotonic() + 5
    while link.device not in worker.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert link.device in worker.streams
    link.publish(f"hearth/{link.device}/status", b'{"type": "device-status", "v": 1, "online": false}')
    deadline = time.monotonic() + 5
    while link.device in worker.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert link.device not in worker.streams


def test_stream_in_another_format_is_converted(device, speech):
    """A 22.05 kHz microphone: Hearth resamples the stream before the wake word and STT see it."""
    wav = speech(WAKE, rate=22050)
    heard = satellite.run(device(), Wav(b"\0" * 22050 + wav.pcm, wav.format))
    assert heard.of("detected") and heard.of("final"), heard.events
    assert word_error_rate("what time is it", heard.of("final")[0].text) <= 0.34
