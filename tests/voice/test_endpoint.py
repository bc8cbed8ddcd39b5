"""The endpointer on real speech and silence (Silero VAD)."""

from __future__ import annotations

from appliance.audio.endpoint import Endpointer
from appliance.state.config import EndpointSettings

SILENCE = b"\0\0" * 16000


def events(ep: Endpointer, pcm: bytes) -> list[str]:
    out = []
    for i in range(0, len(pcm), 960):
        out += ep.feed(pcm[i:i + 960])
    return out


def test_speech_pause_endpoint(speech):
    wav = speech("Turn on the kitchen lights.", pad_ms=600)
    ep = Endpointer(EndpointSettings(silence_ms=300))
    seen = events(ep, wav.pcm)          # short pauses between words may pause/resume in between
    assert seen[0] == "speech" and seen[-2:] == ["pause", "endpoint"] and seen.count("endpoint") == 1
    assert ep.done
    speech_s = ep.last_speech_end / 32000
    assert 1.0 < speech_s < len(wav.pcm) / 32000 - 0.3


def test_device_ended_sessions_keep_listening_after_a_long_pause(speech):
    """A person pauses mid-sentence for longer than the endpoint silence: with the device ending the
    session, the speech after the pause must still count (the bug this guards against made the
    speculative decode of the first half the final transcript)."""
    first = speech("Please add milk.", pad_ms=0)
    second = speech("And two kinds of cheese.", pad_ms=400)
    pcm = first.pcm + SILENCE + second.pcm          # a one-second pause
    ep = Endpointer(EndpointSettings(silence_ms=300), stop_at_endpoint=False)
    seen = events(ep, pcm)
    first_end = seen.index("endpoint")
    assert seen[0] == "speech" and "resume" in seen[first_end:]
    assert seen.count("endpoint") == 2 and seen[-1] == "endpoint"
    assert not ep.done
    assert ep.last_speech_end > len(first.pcm) + len(SILENCE)


def test_no_speech_only_ends_hearth_ended_sessions():
    quiet = b"\0\0" * 16000 * 3
    short = EndpointSettings(no_speech_timeout_ms=2000)
    assert events(Endpointer(short), quiet) == ["no-speech"]
    assert events(Endpointer(short, stop_at_endpoint=False), quiet) == []
