"""faster-whisper (CTranslate2): the default engine, for every Whisper-family model in
appliance/stt/models.py (tiny.en, base) or a model directory.

Whisper's encoder is trained on 30 s windows, and faster-whisper pads every utterance to 30 s, so
a two-second command pays for 28 s of padding: on tiny.en that padding is two thirds of a decode.
CTranslate2's encoder takes a shorter window, and on commands a 10 s window transcribes about as
well as 30 s, while windows hugging the speech make Whisper repeat itself. Measured on 72 decodes
(Piper, espeak-ng and Festival in room noise, espeak-ng in digital silence): WER 0.137 with the
10 s window padded as below vs 0.134 with 30 s, one of the 72 a loop that the check below sends
back to 30 s; 112 vs 355 ms a decode on 2 cores. The window is padded as Whisper pads (the
log-mel of silence), not with faster-whisper's zeros. So speech that fits well inside
`stt.window_s` is encoded in that window; longer speech, and any transcript that comes out
repetitive (gzip ratio above Whisper's own 2.4), gets the full 30 s.
"""

from __future__ import annotations

import re
import threading
import zlib

import numpy as np

from appliance.state.config import SttSettings
from appliance.stt.errors import SttError
from appliance.stt.hardware import cuda_available
from appliance.stt.models import ModelFiles, resolve


SAMPLES_PER_FRAME = 160          # Whisper's mel hop at 16 kHz: 100 frames a second
WINDOW_MARGIN_S = 2.0            # speech must leave this much of the window as padding
REPETITIVE = 2.4                 # Whisper's compression_ratio_threshold
PROMPT_CHARS = 600               # Whisper's prompt holds 223 tokens; the household's words stay well inside


def repetitive(text: str) -> bool:
    """A looping transcript: Whisper's own test (its text compresses too well), or one sentence of
    three words or more said twice in a row ("Lock the front door. Lock the front door.")."""
    raw = text.encode()
    if len(raw) > 24 and len(raw) / len(zlib.compress(raw)) > REPETITIVE:
        return True
    sentences = [" ".join(re.findall(r"[\w']+", part.lower())) for part in re.split(r"[.?!]+", text)]
    sentences = [s for s in sentences if s.count(" ") >= 2]
    return any(a == b for a, b in zip(sentences, sentences[1:]))


def _windowed_model():
    from faster_whisper import WhisperModel

    class WindowedModel(WhisperModel):
        """faster-whisper's model with the encoder's window chosen per decode (under the engine's lock)."""
        window_frames = 0        # 0: the 30 s faster-whisper pads to
        content_frames = 0       # frames of this decode's audio; the rest of the window is padding
        encoded: list[int]       # the frames each encode read, newest last (a few kept)

        def encode(self, features):
            if self.window_frames and features.shape[-1] > self.window_frames:
                window = np.array(features[..., :self.window_frames], dtype=np.float32)
                speech = min(self.content_frames, window.shape[-1])
                if 0 < speech < window.shape[-1]:
                    # pad as Whisper itself does (the log-mel of silence, 8 log10 units under the
                    # loudest), not with faster-whisper's zeros: in a short window zeros make tiny.en
                    # garble speech that ends in digital silence
                    window[..., speech:] = window[..., :speech].max() - 2.0
                features = window
            self.encoded = [*getattr(self, "encoded", [])[-7:], int(features.shape[-1])]
            return super().encode(features)

    return WindowedModel


class WhisperEngine:
    streaming = False

    def __init__(self, settings: SttSettings, model: ModelFiles | None = None):
        model = model or resolve(settings.model)
        device = settings.device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        elif device == "cuda" and not cuda_available():
            raise SttError("stt.device is cuda but CTranslate2 sees no CUDA device; use auto or cpu")
        elif device not in ("cpu", "cuda"):
            raise SttError(f"stt.device must be auto, cpu or cuda, not '{device}'")
        compute = settings.compute_type
        if compute == "auto":
            compute = "float16" if device == "cuda" else "int8"
        self.name = "faster-whisper"
        self.model = model.name
        self.source = settings.model if model.name != "tiny.en" else "tiny.en"   # what loads it again
        self.fallback = ""              # why this is not the model asked for (appliance/stt/engines.py)
        self.device = device
        self.language = settings.language
        self.beam_size = settings.beam_size or model.beam_size
        self.vocabulary = ""            # the household's words, as Whisper's prompt (set_vocabulary)
        self.window_s = settings.window_s
        if self.window_s and not 5 <= self.window_s <= 30:
            raise SttError(f"stt.window_s must be 0 (always 30 s) or 5 to 30 seconds, not {self.window_s}")
        self._model = _windowed_model()(str(model.path), device=device, compute_type=compute,
                                        cpu_threads=settings.threads, local_files_only=True,
                                        files=dict(model.files) if model.files else None)
        self._lock = threading.Lock()   # one decode at a time per engine
        self.multilingual = self._model.model.is_multilingual

    def set_vocabulary(self, words: list[str]) -> None:
        """Names and words the household uses ("bilge pump", "Freya"): Whisper reads them as the text
        before the utterance, which makes it spell them so (measured: bench/accuracy.py)."""
        prompt = ", ".join(w.strip() for w in words if w.strip())
        self.vocabulary = (prompt[:PROMPT_CHARS].rsplit(",", 1)[0] if len(prompt) > PROMPT_CHARS else prompt)
        if self.vocabulary:
            self.vocabulary += "."

    def transcribe(self, pcm: bytes, language: str | None = None) -> str:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if audio.size < 1600:           # under 0.1 s: nothing to hear
            return ""
        lang = (language or self.language) if self.multilingual else None
        window = self.window_frames(audio.size)
        prompt = self.vocabulary
        with self._lock:
            text = self._decode(audio, lang, window, prompt)
            if (window or prompt) and repetitive(text):
                # a loop: decoded again as plain Whisper would (30 s, no prompt). tiny.en loops on
                # some commands when given the household's words (bench/accuracy.py); base rarely
                text = self._decode(audio, lang, 0, "")
            return text

    def window_frames(self, samples: int) -> int:
        """The encoder window for this much audio, in mel frames (0: the full 30 s)."""
        if not self.window_s or samples / 16000 > self.window_s - WINDOW_MARGIN_S:
            return 0
        return self.window_s * 16000 // SAMPLES_PER_FRAME

    def _decode(self, audio: np.ndarray, lang: str | None, window: int, prompt: str = "") -> str:
        self._model.window_frames = window
        self._model.content_frames = audio.size // SAMPLES_PER_FRAME
        segments, _info = self._model.transcribe(
            audio, language=lang, beam_size=self.beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
            temperature=0.0, initial_prompt=prompt or None,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def open_stream(self):
        raise SttError("faster-whisper is not a streaming engine")
