"""What an imported dataset must be, one check at a time. Nothing here runs or opens anything a set
names beyond reading its bytes: paths, sizes, the SHA256SUMS manifest, metadata.csv and each WAV.

The layout is Hugging Face's `audiofolder` (a `metadata.csv` with a `file_name` column beside the
WAV files) plus `SHA256SUMS` in the format `sha256sum` writes, so `sha256sum -c SHA256SUMS` checks a
set without Hearth. Every refusal is a DatasetRefused naming the file and the reason.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import wave
from dataclasses import dataclass
from pathlib import PurePosixPath

MANIFEST = "SHA256SUMS"
METADATA = "metadata.csv"
TEXT_FILES = {"README.md", "README.txt", "LICENSE", "LICENSE.txt"}
TRANSCRIPT_COLUMNS = ("corrected_transcript", "transcript", "transcription", "sentence", "text")
FORMULA = ("=", "+", "-", "@", "\t", "\r")       # a spreadsheet runs a cell that starts so (OWASP CSV injection)
NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,127}$")
SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class Limits:
    """Caps on one import; `total_bytes` comes from `[privacy] import_max_mb`."""

    total_bytes: int = 2048 * 2**20
    file_bytes: int = 64 * 2**20          # one WAV (a minute of 48 kHz stereo is 11 MB)
    text_bytes: int = 16 * 2**20          # metadata.csv, SHA256SUMS, a README
    files: int = 50_003                   # the rows' WAVs, metadata.csv, SHA256SUMS and a README or LICENSE
    rows: int = 50_000
    columns: int = 32
    cell_chars: int = 4096
    clip_s: float = 60.0
    depth: int = 4


class DatasetRefused(ValueError):
    """An import refused: `file` (inside the set, or the set itself) and `reason`."""

    def __init__(self, file: str, reason: str, code: str = "dataset_refused"):
        super().__init__(f"{file}: {reason}; nothing was imported")
        self.file, self.reason, self.code = file, reason, code


def check_path(name: str, limits: Limits) -> str:
    """A member's path as the set names it -> the same, or DatasetRefused (../, absolute, odd names)."""
    if not name or name.startswith("/") or "\\" in name or re.match(r"^[A-Za-z]:", name):
        raise DatasetRefused(name or "(empty name)", "absolute or Windows-style path: only paths inside the set are imported")
    parts = PurePosixPath(name).parts
    if any(p in ("..", ".") for p in name.split("/")):
        raise DatasetRefused(name, "a path with '..' or '.' parts: only paths inside the set are imported")
    if len(parts) > limits.depth:
        raise DatasetRefused(name, f"nested more than {limits.depth} folders deep")
    for part in parts:
        if not NAME_PART.match(part):
            raise DatasetRefused(name, "names may hold letters, digits, space and ._+- (at most 128 characters)")
    return "/".join(parts)


def check_kind(name: str) -> None:
    """Only audio, the metadata, the manifest and a README or licence: nothing that could be run."""
    if name in (METADATA, MANIFEST) or name in TEXT_FILES or name.lower().endswith(".wav"):
        return
    raise DatasetRefused(name, f"not a WAV file, {METADATA}, {MANIFEST}, README or LICENSE: not imported")


def check_mode(name: str, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise DatasetRefused(name, "a symbolic link: links are never followed or imported")
    if not stat.S_ISREG(mode):
        raise DatasetRefused(name, "not a plain file (a device, pipe or socket)")


def check_size(name: str, size: int, limits: Limits) -> None:
    cap = limits.file_bytes if name.lower().endswith(".wav") else limits.text_bytes
    if size > cap:
        raise DatasetRefused(name, f"{size} bytes, over the {cap}-byte limit for one file", "too_large")


def parse_manifest(raw: bytes, limits: Limits) -> dict[str, str]:
    """SHA256SUMS -> {path: sha256}, every path checked."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetRefused(MANIFEST, "not UTF-8 text") from None
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = SUM_LINE.match(line)
        if not match:
            raise DatasetRefused(MANIFEST, f"line {n} is not '<sha256>  <path>' (as sha256sum writes it)")
        path = check_path(match.group(2).removeprefix("./"), limits)
        if path in sums:
            raise DatasetRefused(MANIFEST, f"line {n} names {path} twice")
        sums[path] = match.group(1).lower()
    if not sums:
        raise DatasetRefused(MANIFEST, "lists no files")
    sums.pop(MANIFEST, None)
    return sums


@dataclass(frozen=True)
class Row:
    file_name: str
    text: str
    cells: dict


def parse_metadata(raw: bytes, limits: Limits) -> list[Row]:
    """metadata.csv -> rows: UTF-8, a file_name and a transcript column, capped rows and cells, no
    cell a spreadsheet would run as a formula, each file named once."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetRefused(METADATA, "not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or "file_name" not in header:
            raise DatasetRefused(METADATA, "its first row must name the columns, one of them file_name")
        if len(header) > limits.columns or len(set(header)) != len(header):
            raise DatasetRefused(METADATA, f"at most {limits.columns} columns, each named once")
        spoken = [c for c in TRANSCRIPT_COLUMNS if c in header]
        if not spoken:
            raise DatasetRefused(METADATA, f"no transcript column (one of {', '.join(TRANSCRIPT_COLUMNS)})")
        rows, seen = [], set()
        for cells in reader:
            line = reader.line_num
            if len(rows) >= limits.rows:
                raise DatasetRefused(METADATA, f"more than {limits.rows} rows", "too_large")
            if not any(cells):
                continue
            if len(cells) != len(header):
                raise DatasetRefused(METADATA, f"line {line} has {len(cells)} cells, the header {len(header)}")
            row = dict(zip(header, cells))
            for column, value in row.items():
                if len(value) > limits.cell_chars:
                    raise DatasetRefused(METADATA, f"line {line}, column {column}: over {limits.cell_chars} characters")
                if value.startswith(FORMULA):
                    raise DatasetRefused(METADATA, f"line {line}, column {column}: starts with {value[:1]!r}, which a "
                                                   "spreadsheet would run as a formula ({value[:20]!r})")
            name = check_path(row["file_name"], limits)
            if not name.lower().endswith(".wav"):
                raise DatasetRefused(METADATA, f"line {line}: {name} is not a .wav file")
            if name in seen:
                raise DatasetRefused(METADATA, f"line {line}: {name} is named twice")
            seen.add(name)
            words = next((row[c] for c in spoken if row[c].strip()), "")
            rows.append(Row(name, words.strip(), row))
    except csv.Error as exc:
        raise DatasetRefused(METADATA, f"not CSV ({exc})") from None
    if not rows:
        raise DatasetRefused(METADATA, "has no rows")
    return rows


def check_wav(name: str, raw_file, limits: Limits) -> float:
    """A PCM WAV that holds the audio its header promises; returns its length in seconds."""
    try:
        with wave.open(raw_file, "rb") as w:
            rate, width, channels, frames = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            if width != 2 or channels not in (1, 2) or not 8000 <= rate <= 48000:
                raise DatasetRefused(name, f"{width * 8}-bit, {channels} channel(s), {rate} Hz: Hearth imports 16-bit "
                                           "PCM, mono or stereo, 8-48 kHz", "bad_audio")
            if frames == 0:
                raise DatasetRefused(name, "holds no audio", "bad_audio")
            if frames / rate > limits.clip_s:
                raise DatasetRefused(name, f"{frames / rate:.1f} s long, over {limits.clip_s:g} s", "bad_audio")
            data = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise DatasetRefused(name, f"not a PCM WAV file ({exc})", "bad_audio") from None
    if len(data) != frames * width * channels:
        raise DatasetRefused(name, f"its header promises {frames} frames; the file holds {len(data) // (width * channels)}",
                             "bad_audio")
    return frames / rate
