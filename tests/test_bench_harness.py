"""The voice benchmark's harness works: its modules import, one held-out clip in room noise goes
through a real Hearth in each of Hearth's modes with the clock started at the end of speech, and
the figures of a tiny round turn into verdicts and the markdown section (the peers, installed only
by `./build.sh bench`, are not started here)."""

import importlib
import uuid

import numpy as np
import pytest

from bench import clips, turns, voice
from bench.common import word_error_rate

TEXT = "Call my sister on her mobile phone."


def test_bench_modules_import():
    for name in ("bench.__main__", "bench.voice", "bench.turns", "bench.clips", "bench.peers", "bench.firmware",
                 "bench.common", "bench.satellites", "bench.accuracy"):
        importlib.import_module(name)


def test_clip_has_room_noise_and_knows_where_speech_ends():
    clip = clips.make(None, 0, "espeak", TEXT)
    samples = np.frombuffer(clip.pcm, "<i2").astype(float)
    lead = samples[:int(clips.LEAD_S * clips.RATE)]
    tail = samples[clip.speech_end // 2 + 1600:]
    assert 300 < lead.std() < 1500 and 300 < tail.std() < 1500      # noise, not digital zeros
    speech = samples[clip.speech_end // 2 - 3200:clip.speech_end // 2]
    assert speech.std() > 2 * tail.std()                              # speech right before the end mark
    assert 1.0 < clip.speech_s < 4.0


@pytest.mark.timing
def test_one_round_through_hearth(device):
    clip = clips.make(None, 1, "espeak", TEXT)
    link = device()
    round_ = {f"hearth_{mode}": [] for mode in turns.MODES}
    for mode in turns.MODES:
        turn = turns.hearth(link, clip, mode)
        assert word_error_rate(TEXT, turn.text) <= 0.3, (mode, turn.text)
        assert -0.1 < turn.latency_s < 5.0, (mode, turn.latency_s)
        round_[f"hearth_{mode}"].append({"clip": 0, "ms": turn.latency_s * 1000,
                                         "wer": word_error_rate(TEXT, turn.text)})
    # the peer's columns stand in as a copy of Hearth's: the harness's own arithmetic is what is checked
    first = turns.hearth_say(link, f"The kitchen lights are on now, {uuid.uuid4().hex[:6]}.")
    assert 0 < first < 10
    round_.update(peer_device=round_["hearth_device"], peer_oracle=round_["hearth_oracle"],
                  hearth_tts1=[{"ms": first * 1000}], peer_tts1=[{"ms": first * 1000}],
                  hearth_tts3=[{"ms": 2 * first * 1000}], peer_tts3=[{"ms": first * 1000}])
    fig = {"rounds": 1, "clips": [{"text": TEXT, "voice": "espeak", "speech_s": clip.speech_s}],
           "load_1min": {"samples": [1.0], "mean": 1.0, "max": 1.0},
           "stats": {k: voice._stats([round_], k) for k in round_},
           "memory": {"hearth_rss_mb": 700, "broker_rss_mb": 8, "threads": 30}, "idle_cpu_percent": 0.5}
    fig["verdicts"] = verdicts = voice.verdicts(fig)
    assert verdicts["oracle"] == {"value": 1.0, "met": True}
    assert verdicts["tts3"] == {"value": 2.0, "met": False}
    assert verdicts["memory"] == {"value": 700, "met": False}
    text = voice.section(fig, "docs/benchmarks/voice-x.json")
    assert "three sentences" in text and "**missed**" in text and "Load average" in text


def test_accuracy_corpus_speaks_every_family_clean_and_in_each_noise(monkeypatch):
    """bench/accuracy.py's clips: three voice families, clean and noisy, each noise kind at the level
    it names, the speech's end marked before the noise."""
    from bench import accuracy
    monkeypatch.setattr(accuracy, "PLAIN", ["Dim the lights."])
    monkeypatch.setattr(accuracy, "HOUSE", ["Switch off the bilge pump."])
    items = accuracy.corpus(clips.piper_voice())
    assert {(i.family, i.condition) for i in items} == {(f, c) for f in accuracy.FAMILIES for c in ("clean", "noisy")}
    assert [i.house for i in items] == [False] * 6 + [True] * 6
    for item in items:
        samples = np.frombuffer(item.clip.pcm, "<i2").astype(float)
        tail = samples[item.clip.speech_end // 2 + 1600:]
        assert (300 < tail.std() < 1500) if item.condition == "noisy" else tail.std() < 150, (item.noise, tail.std())
        speech = samples[int(clips.LEAD_S * clips.RATE):item.clip.speech_end // 2]
        assert speech.std() > 2 * tail.std(), (item.family, item.noise)
    for kind in accuracy.NOISES:
        assert abs(accuracy.noise(kind, 16000, 1, 700.0).std() - 700.0) < 1.0


def test_word_error_rate_counts_what_a_listener_would():
    from bench.common import normalised_words
    assert normalised_words("Set a timer for 12 minutes, at the 6th harbour.") == \
        "set a timer for twelve minutes at the six harbor".split()
    assert word_error_rate("Wake me up at half past seven.", "wake me up at half past 7") == 0.0
    assert word_error_rate("Turn the heater down two degrees.", "Turn the figure down to the breeze.") == 4 / 6   # figure, to, the, breeze
