"""The reviewed, allowed utterances as a dataset other tools read: the Hugging Face `audiofolder` layout.

    hearth-dataset/metadata.csv              one row per utterance, a header row first
    hearth-dataset/SHA256SUMS                each file's sha256, as `sha256sum` writes it: another
                                             Hearth imports the set only when every file matches
    hearth-dataset/2025-05-01-103000-123456.wav   16 kHz mono 16-bit PCM: the audio the engine heard

Columns of metadata.csv (UTF-8, RFC 4180 quoting):

| column | what |
|---|---|
| `file_name` | the WAV beside it (the column `audiofolder` joins the audio by) |
| `transcript` | what Hearth heard |
| `corrected_transcript` | what was said, as a person corrected it (empty when marked right, or wrong without a correction) |
| `state` | `right` or `wrong` |
| `device_type` | the kind of device that heard it (`satellite`, `mycroft`, ...; empty for a login that is no paired device) |
| `language` | the language Hearth listened for (`en`, ...) |
| `consent_by`, `consent_at` | who allowed this row's export (Hearth's one admin account) and when (UTC) |
| `duration_s` | the audio's length |

Only utterances that a person reviewed and allowed are in it (appliance/voice/review.py); the
device's id and name, the room and the admin's address stay on the box. A cell that a spreadsheet
would run as a formula (starting with = + - @, a tab or a carriage return) is written with a leading
apostrophe ("'=cmd"): the OWASP advice for CSV that people open in spreadsheets.

Why audiofolder rather than Common Voice's TSV: `datasets.load_dataset("audiofolder", data_dir=...)`
reads it as it is, and so do pandas, a spreadsheet and Python's csv and wave modules; WAV plays
anywhere and is what the engines heard, where Common Voice ships MP3 clips (lossy, another encoder
on the box) with columns (client_id, up/down votes, accents) that a household export cannot fill.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FOLDER = "hearth-dataset"
COLUMNS = ("file_name", "transcript", "corrected_transcript", "state", "device_type", "language",
           "consent_by", "consent_at", "duration_s")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> str:
    """A cell a spreadsheet shows as text, never runs: '=cmd' becomes "'=cmd"."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_START) else text


def file_name(row: dict, taken: set[str]) -> str:
    """`<day>-<HHMMSS>-<microseconds>.wav`: the time only, never the device's id."""
    stem = row["id"].split("/", 1)[1]
    base = f"{row['day']}-{'-'.join(stem.split('-')[:2])}"
    name, n = f"{base}.wav", 1
    while name in taken:
        n += 1
        name = f"{base}-{n}.wav"
    taken.add(name)
    return name


def metadata_row(row: dict, name: str) -> list[str]:
    consent = row["consent"] or {}
    values = (name, row["text"], row["corrected"], row["state"], row["device_type"], row["language"],
              consent.get("by", ""), consent.get("at", ""), row.get("audio_s", ""))
    return [neutralise(v) for v in values]


def write_zip(rows: list[dict], audio: Callable[[str], Path], out: BinaryIO) -> int:
    """The dataset as one zip written to `out`; returns how many utterances it holds. An utterance
    whose audio is gone by the time it is read (deleted meanwhile) is left out, row and all."""
    table = io.StringIO(newline="")
    writer = csv.writer(table, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    taken: set[str] = set()
    sums: list[str] = []
    count = 0
    with zipfile.ZipFile(out, "w") as zf:
        for row in rows:
            try:
                wav = audio(row["id"]).read_bytes()
            except (LookupError, OSError):
                continue
            name = file_name(row, taken)
            zf.writestr(f"{FOLDER}/{name}", wav, zipfile.ZIP_STORED)     # PCM barely compresses
            sums.append(f"{hashlib.sha256(wav).hexdigest()}  {name}")
            writer.writerow(metadata_row(row, name))
            count += 1
        metadata = table.getvalue().encode("utf-8")
        zf.writestr(f"{FOLDER}/metadata.csv", metadata, zipfile.ZIP_DEFLATED)
        sums.append(f"{hashlib.sha256(metadata).hexdigest()}  metadata.csv")
        zf.writestr(f"{FOLDER}/SHA256SUMS", ("\n".join(sums) + "\n").encode(), zipfile.ZIP_DEFLATED)
    return count
