"""Piper's onnxruntime session shares the cores with the STT engine: threads set, no spinning, no pinning."""

import os
from pathlib import Path

import pytest

from appliance.state.config import TtsSettings
from appliance.tts import voices


def _pinned_threads() -> list[str]:
    """Threads of this process allowed on fewer CPUs than the process itself."""
    allowed = len(os.sched_getaffinity(0))
    return [t.name for t in Path("/proc/self/task").iterdir() if len(os.sched_getaffinity(int(t.name))) < allowed]


def test_session_options_share_the_cores():
    options = voices.session_options(2)
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    with pytest.raises(voices.VoiceError, match="tts.threads must be 1 or more"):
        voices.session_options(0)


def test_loaded_voice_speaks_and_pins_no_thread():
    before = _pinned_threads()
    voice = voices.Voices(TtsSettings(threads=2)).get(None)
    audio = b"".join(c.audio_int16_bytes for c in voice.synthesize("The kitchen lights are on now."))
    assert len(audio) > 2 * 22050 // 2          # at least half a second of speech
    assert _pinned_threads() == before
    # positive control: Piper's own loader (thread count left to onnxruntime) pins a worker where
    # onnxruntime may choose, on more than one CPU; on one CPU it has nothing to choose and pins none
    from piper import PiperVoice
    info = voices.discover(TtsSettings())[TtsSettings().voice]
    default = PiperVoice.load(info.model, info.config)
    list(default.synthesize("Hello."))
    if len(os.sched_getaffinity(0)) > 1:
        assert len(_pinned_threads()) > len(before)
    else:
        assert _pinned_threads() == before
