"""A small on-disk cache of synthesised phrases: repeated replies cost a file read, not a synthesis.

One file per (voice, text): a 4-byte chunk count, then each chunk as 4-byte length + PCM, so a
cached reply streams with the same sentence chunks as a fresh one. Least recently used go first.
Entries are written whole or not at all; a full disk raises storage.DiskFull (the reply has gone out).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from pathlib import Path

from appliance.state.storage import atomic_write


class PhraseCache:
    def __init__(self, directory: Path, max_entries: int):
        self.dir = Path(directory)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        if max_entries > 0:
            self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, voice: str, text: str) -> Path:
        digest = hashlib.sha256(f"{voice}\0{' '.join(text.split())}".encode()).hexdigest()
        return self.dir / f"{digest}.pcm"

    def get(self, voice: str, text: str) -> list[bytes] | None:
        if self.max_entries <= 0:
            return None
        path = self._path(voice, text)
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            return None
        try:
            (count,), pos, chunks = struct.unpack_from("<I", data), 4, []
            for _ in range(count):
                (n,) = struct.unpack_from("<I", data, pos)
                chunks.append(data[pos + 4: pos + 4 + n])
                pos += 4 + n
            if pos != len(data):
                raise ValueError("trailing bytes")
        except (struct.error, ValueError):
            path.unlink(missing_ok=True)     # a damaged entry is simply synthesised again
            return None
        return chunks

    def put(self, voice: str, text: str, chunks: list[bytes]) -> None:
        if self.max_entries <= 0:
            return
        body = struct.pack("<I", len(chunks)) + b"".join(struct.pack("<I", len(c)) + c for c in chunks)
        path = self._path(voice, text)
        with self._lock:
            atomic_write(path, body, self.dir.parent)
            entries = sorted(self.dir.glob("*.pcm"), key=lambda p: p.stat().st_mtime)
            for old in entries[: max(0, len(entries) - self.max_entries)]:
                old.unlink(missing_ok=True)
