"""The voice pipeline over a real Mosquitto with the real engines: say, transcribe, endpointing."""

from __future__ import annotations

from appliance import client
from appliance.audio.pcm import read_wav, wav_bytes
from conftest import word_error_rate

COMMAND = "Turn on the kitchen lights and set a timer for ten minutes."


def test_say_streams_sentences_between_start_and_end(device):
    link = device()
    spoken = client.say(link, "Hello from Hearth. This is the second sentence. And a third one.")
    assert spoken.rate == 22050
    assert spoken.end.chunks >= 3                     # one or more chunks per sentence
    seconds = len(spoken.pcm) / 2 / spoken.rate
    assert 2.0 < seconds < 12.0
    assert abs(spoken.end.audio_s - seconds) < 0.01
    assert spoken.first_audio_s < spoken.total_s


def test_repeated_phrase_comes_from_the_cache(device):
    link = device()
    first = client.say(link, "The phrase cache keeps this one.")
    again = client.say(link, "The phrase cache keeps this one.")
    assert not first.end.cached and again.end.cached
    assert again.pcm == first.pcm


def test_transcribe_with_device_endpoint(device, speech):
    link = device()
    heard = client.transcribe(link, speech(COMMAND))
    assert word_error_rate(COMMAND, heard.final.text) <= 0.25, heard.final.text
    assert heard.final.endpoint == "device"
    assert heard.final.engine == "faster-whisper"
    assert heard.final.audio_s > 2.0


def test_transcribe_other_voice_and_format(device, speech):
    """espeak-ng at 22.05 kHz: Hearth converts the declared format itself."""
    text = "What is the weather like tomorrow morning"
    wav = speech(text, voice="espeak", rate=22050)
    assert wav.format.rate == 22050
    heard = client.transcribe(device(), wav)
    assert word_error_rate(text, heard.final.text) <= 0.35, heard.final.text


def test_vad_endpoint_ends_the_session_without_the_device(device, speech):
    wav = speech(COMMAND, pad_ms=1500)                 # trailing silence, no stt/end from the device
    heard = client.transcribe(device(), wav, endpoint="vad", realtime=True)
    assert heard.final.endpoint == "vad"
    assert word_error_rate(COMMAND, heard.final.text) <= 0.25, heard.final.text
    # the endpoint fired inside the trailing silence, before the file ran out
    assert heard.latency_s < 0.6


def test_partials_arrive_while_speaking(device, speech):
    text = "Please add milk, eggs, bread, butter and two kinds of cheese to the shopping list for Saturday."
    heard = client.transcribe(device(), speech(text), realtime=True)
    assert heard.partials, "no partial transcript while speaking"
    assert word_error_rate(text, heard.final.text) <= 0.3


def test_silence_only_gives_empty_transcript_with_vad(device, hearth):
    """Nobody speaks for longer than endpoint.no_speech_timeout_ms: an empty final, no decode."""
    seconds = hearth.settings.endpoint.no_speech_timeout_ms / 1000 + 1
    silence = read_wav(wav_bytes(b"\0\0" * int(16000 * seconds), 16000))
    heard = client.transcribe(device(), silence, endpoint="vad")
    assert heard.final.text == ""
    assert heard.final.endpoint == "no-speech"
