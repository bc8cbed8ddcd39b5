"""The wake word engine without MQTT: the batched openWakeWord scores like the library stream for
stream, the quiet gate skips silence, arbitration picks the strongest claim, models resolve."""

from __future__ import annotations

import numpy as np
import pytest
from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

from appliance.audio.pcm import level_dbfs
from appliance.state.config import WakeSettings
from appliance.wake.arbitration import Arbiter, Claim
from appliance.wake.features import CHUNK_BYTES, OwwFeatures, OwwModel
from appliance.wake.models import MICRO, OWW, Catalog, WakeModelError, threshold
from appliance.wake.stream import Stream
from mqtt.messages import ProtocolError
from mqtt.wake import WakeStart


@pytest.fixture(scope="module")
def wake_pcm(speech):
    pcm = speech("Hey Mycroft, what time is it?", lead_ms=1000).pcm
    return pcm[:len(pcm) // CHUNK_BYTES * CHUNK_BYTES]


def test_batched_features_score_like_the_library(wake_pcm):
    feats, model = OpenWakeWordFeatures.from_builtin(), OpenWakeWord.from_builtin(Model.HEY_MYCROFT)
    expected = []
    for i in range(0, len(wake_pcm), CHUNK_BYTES):
        probs = [p for e in feats.process_streaming(wake_pcm[i:i + CHUNK_BYTES]) for p in model.process_streaming(e)]
        expected.append(probs[-1])
    shared = OwwFeatures()
    ours = OwwModel("hey_mycroft", Catalog(WakeSettings()).resolve(OWW, "hey_mycroft").path)
    noise = np.random.default_rng(1).normal(0, 500, len(wake_pcm) // 2).astype("<i2").tobytes()
    states = [shared.new_state() for _ in range(3)]      # stream 0 and 2 hear the wake word, 1 hears noise
    got = []
    for i in range(0, len(wake_pcm), CHUNK_BYTES):
        chunk = wake_pcm[i:i + CHUNK_BYTES]
        shared.step(states, [chunk, noise[i:i + CHUNK_BYTES], chunk])
        got.append(ours.score(states))
    got = np.array(got)
    assert max(expected) > 0.9
    # batch sizes and thread counts pick different TFLite kernels: equal up to float rounding, which
    # the sigmoid's steep edge can stretch to a few hundredths on one chunk; the detections agree
    expected = np.array(expected)
    for k in (0, 2):
        assert np.median(np.abs(got[:, k] - expected)) < 1e-3
        assert abs(got[:, k].max() - expected.max()) < 0.02
        assert ((got[:, k] >= 0.5) == (expected >= 0.5)).all()
    assert got[:, 1].max() < 0.5


def test_gate_skips_a_quiet_stream_and_opens_on_speech(wake_pcm):
    ref = Catalog(WakeSettings()).default
    s = Stream("d", WakeStart(stream="s"), ref, 0.5, "*")
    quiet = np.random.default_rng(2).normal(0, 30, CHUNK_BYTES // 2).astype("<i2").tobytes()
    opened = [s.gate(quiet, 10.0) for _ in range(60)]
    assert not any(opened[30:])                          # a steady quiet room: no inference
    chunks = [wake_pcm[i:i + CHUNK_BYTES] for i in range(0, len(wake_pcm), CHUNK_BYTES)]
    loud = max(chunks, key=level_dbfs)
    assert s.gate(loud, 10.0)
    assert all(s.gate(quiet, 10.0) for _ in range(5))     # held open after speech
    assert s.gate(quiet, 0.0)                             # gate_db 0: always on


def test_arbitration_strongest_wins_and_late_claims_stand_down():
    a = Arbiter(0.3)
    assert a.claim("kitchen", Claim("far", "s", 0.99, -40.0, 10.0)) is None
    assert a.claim("kitchen", Claim("near", "s", 0.99, -20.0, 10.1)) is None
    assert a.claim("hall", Claim("alone", "s", 0.7, -30.0, 10.1)) is None
    assert a.due(10.2) == []
    decided = {d.group: d for d in a.due(10.41)}
    assert decided["kitchen"].winner.device == "near" and [c.device for c in decided["kitchen"].losers] == ["far"]
    assert decided["hall"].winner.device == "alone" and not decided["hall"].losers
    late = a.claim("kitchen", Claim("slow", "s", 1.0, -10.0, 10.5))
    assert late.winner is None and late.previous == "near" and late.losers[0].device == "slow"
    assert a.claim("kitchen", Claim("next", "s", 0.9, -30.0, 12.0)) is None   # a new utterance later


def test_score_beats_level():
    a = Arbiter(0.3)
    a.claim("*", Claim("loud", "s", 0.6, -10.0, 1.0))
    a.claim("*", Claim("sure", "s", 0.95, -35.0, 1.1))
    assert a.due(2.0)[0].winner.device == "sure"


def test_sensitivity_maps_to_threshold():
    assert threshold(0.5, 0.95) == pytest.approx(0.95)
    assert threshold(0.0, 0.5) == pytest.approx(1.0)
    assert threshold(1.0, 0.5) == pytest.approx(0.0)
    assert threshold(0.75, 0.5) == pytest.approx(0.25)


def test_catalog_knows_bundled_and_dropped_in_models(tmp_path):
    cat = Catalog(WakeSettings())
    assert {"hey_mycroft", "alexa", "hey_jarvis", "hey_rhasspy", "okay_nabu"} <= set(cat.names(OWW))
    assert "hey_mycroft" in cat.names(MICRO) and "melspectrogram" not in cat.names(OWW)
    (tmp_path / "hey_hearth.tflite").write_bytes(cat.resolve(OWW, "alexa").path.read_bytes())
    extra = Catalog(WakeSettings(models_dir=str(tmp_path)))
    assert extra.resolve(OWW, "hey_hearth").path.parent == tmp_path
    with pytest.raises(ProtocolError) as err:
        extra.resolve(OWW, "hey_nobody", "s1")
    assert err.value.code == "unknown_model" and "hey_hearth" in err.value.message
    with pytest.raises(WakeModelError):
        Catalog(WakeSettings(model="hey_nobody"))
    with pytest.raises(WakeModelError):
        Catalog(WakeSettings(models_dir=str(tmp_path / "missing")))


def test_close_scores_tie_and_the_louder_wins_with_peak_scores():
    a = Arbiter(0.3)
    a.claim("*", Claim("far", "s", 0.999, -40.0, 1.0))
    a.claim("*", Claim("near", "s", 0.62, -20.0, 1.05))
    a.raise_score("*", "near", 0.97)            # the near device's score peaks a chunk later
    a.raise_score("*", "near", 0.8)             # lower scores do not replace the peak
    d = a.due(2.0)[0]
    assert d.winner.device == "near" and d.winner.score == pytest.approx(0.97)


def test_a_streams_score_is_its_own_beside_twenty_speaking_streams(speech, wake_pcm):
    """A quiet probe (espeak-ng, another voice family, in room noise) scores the same alone, beside 20
    streams of loud speech, and in the library's own streaming code: whatever is batched must be
    batch-invariant (the melspectrogram network is not, so it runs per stream)."""
    probe = speech("hey my croft, what time is it", voice="espeak", gain=0.3, lead_ms=1000).pcm
    rng = np.random.default_rng(3)
    probe = np.clip(np.frombuffer(probe, "<i2") + rng.normal(0, 60, len(probe) // 2), -32768, 32767).astype("<i2").tobytes()
    n = min(len(probe), len(wake_pcm)) // CHUNK_BYTES * CHUNK_BYTES
    probe, loud = probe[:n], wake_pcm[:n]
    feats, model = OpenWakeWordFeatures.from_builtin(), OpenWakeWord.from_builtin(Model.HEY_MYCROFT)
    library = []
    for i in range(0, n, CHUNK_BYTES):
        probs = [p for e in feats.process_streaming(probe[i:i + CHUNK_BYTES]) for p in model.process_streaming(e)]
        library.append(probs[-1])
    library = np.array(library)
    ours = OwwModel("hey_mycroft", Catalog(WakeSettings()).resolve(OWW, "hey_mycroft").path)

    def scores(neighbours: int) -> np.ndarray:
        shared = OwwFeatures()
        states = [shared.new_state() for _ in range(neighbours + 1)]
        out = []
        for i in range(0, n, CHUNK_BYTES):
            shifted = [loud[(i + k * 4 * CHUNK_BYTES) % n:][:CHUNK_BYTES].ljust(CHUNK_BYTES, b"\0")
                       for k in range(neighbours)]       # each neighbour at another point of the sentence
            shared.step(states, [probe[i:i + CHUNK_BYTES]] + shifted)
            out.append(ours.score(states)[0])
        return np.array(out)

    alone, beside = scores(0), scores(20)
    assert library.max() > 0.5                           # the probe is a real detection (positive control)
    assert np.abs(alone - beside).max() < 0.01
    assert np.median(np.abs(alone - library)) < 1e-3 and np.median(np.abs(beside - library)) < 1e-3
    assert np.abs(beside - library).max() < 0.01
