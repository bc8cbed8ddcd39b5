"""Whisper's encoder window (appliance/stt/whisper.py, issue 13): a command is encoded in a 10 s
window instead of 30 s and transcribes the same; speech too long for the window, and a transcript
that comes out looping, get the full 30 s. Real tiny.en, speech from three voice families in room noise."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from appliance.state.config import SttSettings
from bench import clips
from appliance.stt.engines import SttError, load_engine
from appliance.stt.whisper import repetitive
from conftest import word_error_rate
from voices import in_room, quiet

FULL = 3000                       # mel frames in Whisper's 30 s


_piper = functools.cache(clips.piper_voice)


def _speech(voice: str, text: str) -> np.ndarray:
    return clips.dry(_piper() if voice == "piper" else None, voice, text)


def _pcm(voice: str, text: str, seed: int, then: str = "") -> bytes:
    parts = [quiet(0.25), _speech(voice, text), quiet(0.15)]
    if then:
        parts += [quiet(0.3), _speech(voice, then), quiet(0.15)]
    return np.clip(in_room(parts, seed=seed), -32768, 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def windowed():
    return load_engine(SttSettings())


@pytest.fixture(scope="module")
def full():
    return load_engine(SttSettings(window_s=0))


@pytest.mark.parametrize("voice,text", [
    ("piper", "Turn off the kitchen lights."),
    ("espeak", "Set a timer for ten minutes."),
    ("festival", "Is it going to rain this afternoon?"),
])
def test_a_command_is_encoded_in_ten_seconds_and_transcribed_as_well(windowed, full, voice, text):
    pcm = _pcm(voice, text, seed=len(text))
    short = windowed.transcribe(pcm)
    assert windowed._model.encoded[-1] == 1000, windowed._model.encoded
    whole = full.transcribe(pcm)                       # control: the 30 s faster-whisper pads to
    assert full._model.encoded[-1] == FULL
    assert word_error_rate(text, short) <= word_error_rate(text, whole) + 0.15, (short, whole)
    assert word_error_rate(text, short) <= 0.2, short
    assert not repetitive(short)


def test_speech_too_long_for_the_window_gets_the_full_thirty_seconds(windowed):
    pcm = _pcm("espeak", "Remind me to call the plumber tomorrow morning about the leaking pipe under the kitchen sink.",
               seed=5, then="Then add flour, sugar, butter and a bottle of olive oil to the shopping list.")
    assert len(pcm) / 32000 > 8.0
    out = windowed.transcribe(pcm)
    assert windowed._model.encoded[-1] == FULL
    assert "kitchen sink" in out.lower() and "olive oil" in out.lower(), out
    short = _pcm("espeak", "Lock the front door.", seed=5)
    windowed.transcribe(short)                         # positive control: the same engine windows a command
    assert windowed._model.encoded[-1] == 1000


def test_a_looping_transcript_is_decoded_again_with_thirty_seconds():
    """A 5 s window hugs a 1.5-2 s command so closely that tiny.en repeats it ("Lock the front
    door. Lock the front door. ..."); the engine sees the loop and decodes the full window."""
    tight = load_engine(SttSettings(window_s=5))
    looped = 0
    for seed, (voice, text) in enumerate([("piper", "Turn off the kitchen lights."),
                                          ("piper", "Lock the front door."),
                                          ("festival", "Set a timer for ten minutes.")]):
        out = tight.transcribe(_pcm(voice, text, seed))
        encoded = tight._model.encoded
        assert not repetitive(out), out
        assert word_error_rate(text, out) <= 0.2, out
        if encoded[-2:] == [500, FULL]:
            looped += 1
        else:
            assert encoded[-1] == 500                  # no loop: one windowed decode was enough
    assert looped >= 1, "none of the tight-window decodes looped: this test no longer exercises the fallback"


@pytest.mark.parametrize("text,loops", [
    ("Lock the front door. Lock the front door.", True),
    ("Is it going to rain this afternoon? Is it going to rain this afternoon? Is it going", True),
    ("ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha ha", True),
    ("Set a timer for 10 minutes.", False),
    ("Turn off the lights. Turn on the fan.", False),
    ("No, no. Yes.", False),
])
def test_what_counts_as_a_loop(text, loops):
    assert repetitive(text) is loops


def test_a_window_outside_five_to_thirty_seconds_is_refused():
    with pytest.raises(SttError, match="window_s"):
        load_engine(SttSettings(window_s=3))


def test_speech_ending_in_digital_silence_is_padded_as_whisper_pads(windowed, full, tmp_path):
    """espeak-ng padded with zeros (no room noise): with faster-whisper's zero padding in a 10 s
    window tiny.en heard "What is that when I can follow morning?"; padded with the log-mel of
    silence, as Whisper pads, it hears the sentence, as the 30 s decode does."""
    import subprocess
    from appliance.audio.pcm import read_wav
    text = "What is the weather like tomorrow morning"
    raw, wav = tmp_path / "raw.wav", tmp_path / "16k.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), "pad", "0.2", "0.3"], check=True)
    pcm = read_wav(str(wav)).pcm
    assert word_error_rate(text, full.transcribe(pcm)) <= 0.15            # control: the 30 s decode
    assert word_error_rate(text, windowed.transcribe(pcm)) <= 0.15
    assert windowed._model.encoded[-1] == 1000
