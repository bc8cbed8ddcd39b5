"""Compressed audio files (FLAC, as Mycroft devices send to /v1/stt; WAV) -> engine-format PCM.

Decoded with PyAV (FFmpeg's decoders, in the `av` wheel). Anything else, a broken file, or audio
longer than the limit raises AudioFileError with a message for the sender.
"""

from __future__ import annotations

import io

import av

from appliance.audio.pcm import ENGINE_BYTES_PER_S, ENGINE_FORMAT

FORMATS = {"flac", "wav"}


class AudioFileError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def decode_file(data: bytes, max_seconds: float) -> bytes:
    """16 kHz mono s16 PCM of a FLAC or WAV file."""
    if not data:
        raise AudioFileError("bad_audio", "the body is empty: send a FLAC file")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            names = set(container.format.name.split(","))
            if not names & FORMATS or not container.streams.audio:
                raise AudioFileError("unsupported_audio", f"audio must be FLAC (or WAV), not {container.format.name}")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=ENGINE_FORMAT.rate)
            pcm = bytearray()
            limit = int(max_seconds * ENGINE_BYTES_PER_S)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    pcm += out.to_ndarray().tobytes()
                if len(pcm) > limit:
                    raise AudioFileError("too_long", f"audio is longer than the {max_seconds:.0f} s limit")
            for out in resampler.resample(None):
                pcm += out.to_ndarray().tobytes()
    except AudioFileError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise AudioFileError("bad_audio", f"the body is not a readable FLAC file ({exc})") from None
    if not pcm:
        raise AudioFileError("bad_audio", "the file holds no audio")
    return bytes(pcm)
