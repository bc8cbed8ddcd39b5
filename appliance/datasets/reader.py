"""Read an imported set back (the accuracy bench's held-out family): each row's transcript and its
audio as 16 kHz mono 16-bit PCM, the engines' format. Only sets the importer let in are read, so the
checks (paths, sizes, WAV format) have been made on these very bytes."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

from appliance.audio.pcm import frame_to_engine
from appliance.datasets.checks import METADATA, Limits, parse_metadata
from appliance.datasets.importer import INFO, SET_NAME
from mqtt.messages import AudioFormat


@dataclass(frozen=True)
class Sample:
    dataset: str
    file_name: str
    text: str
    pcm: bytes               # 16 kHz mono s16


def sets(datasets_dir: Path) -> list[Path]:
    """The imported sets in a data directory's datasets folder (none: [])."""
    root = Path(datasets_dir)
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if p.is_dir() and SET_NAME.match(p.name) and (p / INFO).is_file()]


def samples(folder: Path) -> list[Sample]:
    """Every row of one imported set that has a transcript."""
    folder = Path(folder)
    out = []
    for row in parse_metadata((folder / METADATA).read_bytes(), Limits()):
        if not row.text:
            continue
        with wave.open(str(folder / row.file_name), "rb") as w:
            fmt = AudioFormat(w.getframerate(), w.getsampwidth(), w.getnchannels())
            pcm = w.readframes(w.getnframes())
        out.append(Sample(folder.name, row.file_name, row.text, frame_to_engine(pcm, fmt)))
    return out
