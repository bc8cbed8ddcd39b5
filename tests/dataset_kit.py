"""Datasets in the audiofolder layout, as the import and wake-review tests make them: real speech
(espeak-ng and Festival) in room noise, metadata.csv, and SHA256SUMS as `sha256sum` writes it."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

import voices
from appliance.audio.pcm import wav_bytes

SENTENCES = ["Turn on the porch light.", "Set a timer for five minutes.", "What is the weather tomorrow?"]


@pytest.fixture(scope="module")
def clips() -> list[bytes]:
    """Real speech (espeak-ng and Festival) in room noise, one WAV each; the last one 22.05 kHz stereo."""
    out = []
    for k, text in enumerate(SENTENCES):
        samples = voices.in_room([voices.quiet(0.3), voices.say(None, ("espeak", "festival")[k % 2], text),
                                  voices.quiet(0.5)], seed=k)
        pcm = np.clip(samples, -32768, 32767).astype("<i2")
        if k == 2:
            wide = np.interp(np.arange(int(len(pcm) * 22050 / 16000)) * 16000 / 22050, np.arange(len(pcm)), pcm)
            stereo = np.repeat(wide.astype("<i2")[:, None], 2, axis=1)
            out.append(wav_bytes(stereo.tobytes(), 22050, channels=2))
        else:
            out.append(wav_bytes(pcm.tobytes(), 16000))
    return out


def write_set(folder: Path, clips: list[bytes], rows: list[dict] | None = None, sums: bool = True) -> Path:
    """A set in the audiofolder layout: audio/NNN.wav, metadata.csv, SHA256SUMS over everything."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = [{"file_name": f"audio/{k:03d}.wav", "transcript": text, "corrected_transcript": "",
                 "state": "right", "device_type": "satellite", "language": "en", "consent": "admin 2025-01-01"}
                for k, text in enumerate(SENTENCES)]
    for k, audio in enumerate(clips):
        (folder / "audio" / f"{k:03d}.wav").write_bytes(audio)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    (folder / "metadata.csv").write_text(buf.getvalue())
    if sums:
        reseal(folder)
    return folder


def reseal(folder: Path) -> None:
    """SHA256SUMS as `sha256sum` writes it, over every file but itself."""
    lines = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != "SHA256SUMS":
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def zip_of(folder: Path, out: Path, extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return out
