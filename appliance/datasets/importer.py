"""Import a dataset from a zip or a folder (a USB stick): staged, checked whole, then renamed in.

    <data>/datasets/<name>/          one imported set, as it came (metadata.csv, SHA256SUMS, WAVs)
    <data>/datasets/<name>/.imported.json   where it came from, when, what it holds
    <data>/datasets/.staging-*/      an import in progress (removed when it fails, and at start)

Every member is copied into the staging folder on the data disk while its bytes are counted and
hashed, so a 10 GB file is refused at the per-file cap without being read whole, and every later
check (the manifest's sha256, metadata.csv, each WAV) reads the bytes that are kept. Only when all
of it passes is the folder renamed into place: a refused import leaves nothing behind. Nothing in a
set is run; files are written 0644 whatever the zip says. Kept apart from the household's own
utterances (<data>/utterances) and never mixed with them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.datasets.checks import (MANIFEST, METADATA, DatasetRefused, Limits, check_kind, check_mode,
                                       check_path, check_size, check_wav, parse_manifest, parse_metadata)
from appliance.state.storage import atomic_write, fsync_dir

log = logging.getLogger(__name__)
CHUNK = 1 << 20
SET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INFO = ".imported.json"


@dataclass(frozen=True)
class Member:
    name: str              # its path inside the set (checked)
    size: int              # as the source declares it (a zip's header, a file's lstat): refused early, recounted


def _folder_members(root: Path, limits: Limits) -> Iterator[tuple[Member, Callable]]:
    for here, dirs, files in os.walk(root, followlinks=False):
        rel_here = Path(here).relative_to(root)
        for d in list(dirs):
            rel = (rel_here / d).as_posix()
            if os.path.islink(os.path.join(here, d)):
                raise DatasetRefused(rel, "a symbolic link: links are never followed or imported")
            if d.startswith("."):
                dirs.remove(d)             # .Trashes, .Spotlight-V100 on a stick: skipped, never imported
        for f in sorted(files):
            if f.startswith("."):
                continue
            path = os.path.join(here, f)
            rel = check_path((rel_here / f).as_posix(), limits)
            st = os.lstat(path)
            check_mode(rel, st.st_mode)

            def opener(path=path):
                return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
            yield Member(rel, st.st_size), opener


def _zip_members(zf: zipfile.ZipFile, limits: Limits) -> Iterator[tuple[Member, Callable]]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    # a zip of a folder: everything under one top folder, metadata.csv inside it
    tops = {n.split("/", 1)[0] for n in names}
    strip = len(tops) == 1 and METADATA not in names and all("/" in n for n in names)
    for info in infos:
        raw = info.filename.split("/", 1)[1] if strip else info.filename
        if _hidden(raw):
            continue
        rel = check_path(raw, limits)
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode):   # made on Unix with a file type: it says what it is
            check_mode(rel, mode)
        if info.flag_bits & 0x1:
            raise DatasetRefused(rel, "encrypted: Hearth imports only plain zips")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DatasetRefused(rel, "compressed in a way Hearth does not read (only stored or deflated)")
        yield Member(rel, info.file_size), (lambda info=info: zf.open(info))


def _hidden(name: str) -> bool:
    """macOS's __MACOSX/ and dot files ride along in zips and on sticks: skipped, never imported."""
    return name.startswith("__MACOSX/") or any(p.startswith(".") and p not in (".", "..") for p in name.split("/"))


class Datasets:
    """The imported sets under `<data>/datasets`; one import at a time."""

    def __init__(self, root: Path, limits: Callable[[], Limits], room: Callable[[], int] | None = None):
        self.root = Path(root)
        self.limits = limits
        self.room = room or (lambda: shutil.disk_usage(self.root.parent).free)   # bytes the data disk may take

    def clean_staging(self) -> None:
        """Imports a killed process left half done: removed (they were never in place)."""
        if self.root.exists():
            for p in self.root.glob(".staging-*"):
                shutil.rmtree(p, ignore_errors=True)

    def list(self) -> list[dict]:
        if not self.root.exists():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and SET_NAME.match(p.name):
                try:
                    info = json.loads((p / INFO).read_text())
                except (OSError, ValueError):
                    info = {}
                out.append({"name": p.name, "path": str(p), **info})
        return out

    def remove(self, name: str) -> None:
        folder = self._folder(name)
        if not folder.is_dir():
            raise DatasetRefused(name, "no imported set by that name", "not_found")
        shutil.rmtree(folder)

    def _folder(self, name: str) -> Path:
        if not SET_NAME.match(name or ""):
            raise DatasetRefused(name or "(no name)", "a set's name is 1-64 of a-z, 0-9, _ and -, starting with a letter or digit")
        return self.root / name

    def import_path(self, source: Path, name: str | None = None) -> dict:
        """Import a zip file or a folder; the set's facts, or DatasetRefused (nothing left behind)."""
        source = Path(source)
        if not source.exists():
            raise DatasetRefused(str(source), "no such file or folder")
        name = name or _name_from(source)
        target = self._folder(name)
        if target.exists():
            raise DatasetRefused(name, "a set by this name is imported already: remove it first, or give another --name",
                                 "exists")
        limits = self.limits()
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{secrets.token_hex(6)}"
        staging.mkdir(mode=0o755)
        try:
            if source.is_dir():
                facts = self._stage(_folder_members(source, limits), staging, limits)
            else:
                try:
                    with zipfile.ZipFile(source) as zf:
                        facts = self._stage(_zip_members(zf, limits), staging, limits)
                except zipfile.BadZipFile as exc:
                    raise DatasetRefused(source.name, f"not a zip file or a folder ({exc})") from None
            facts = {"source": str(source), "imported": datetime.now().isoformat(timespec="seconds"), **facts}
            atomic_write(staging / INFO, json.dumps(facts, indent=1))
            os.rename(staging, target)          # the whole set at once, or nothing
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("dataset %s imported from %s: %d rows, %d bytes", name, source, facts["rows"], facts["bytes"])
        return {"name": name, "path": str(target), **facts}

    def _stage(self, members: Iterator[tuple[Member, Callable]], staging: Path, limits: Limits) -> dict:
        room = self.room()
        total, digests = 0, {}
        for member, opener in members:
            check_kind(member.name)
            check_size(member.name, member.size, limits)
            if member.name in digests:
                raise DatasetRefused(member.name, "in the set twice")
            if len(digests) >= limits.files:
                raise DatasetRefused(member.name, f"more than {limits.files} files", "too_large")
            if total + member.size > limits.total_bytes:
                raise DatasetRefused(member.name, f"the set passes the {limits.total_bytes}-byte limit here "
                                                  "([privacy] import_max_mb)", "too_large")
            if total + member.size > room:
                raise DatasetRefused(member.name, f"the data disk has room for {room} bytes above its low-disk reserve; "
                                                  "the set needs more", "disk_full")
            digests[member.name] = self._copy(member, opener, staging, limits, total)
            total += (staging / member.name).stat().st_size
        if METADATA not in digests:
            raise DatasetRefused(METADATA, "missing: the set must have one beside its WAV files")
        if MANIFEST not in digests:
            raise DatasetRefused(MANIFEST, "missing: the set must list every file's sha256 (as `sha256sum` writes it)")
        del digests[MANIFEST]
        sums = parse_manifest((staging / MANIFEST).read_bytes(), limits)
        for path, digest in digests.items():
            if path not in sums:
                raise DatasetRefused(path, f"not listed in {MANIFEST}")
            if sums[path] != digest:
                raise DatasetRefused(path, f"sha256 {digest} does not match {MANIFEST} ({sums[path]})", "bad_checksum")
        if missing := sorted(set(sums) - set(digests)):
            raise DatasetRefused(missing[0], f"listed in {MANIFEST} but not in the set")
        rows = parse_metadata((staging / METADATA).read_bytes(), limits)
        wavs = {p for p in digests if p.lower().endswith(".wav")}
        named = {r.file_name for r in rows}
        if missing := sorted(named - wavs):
            raise DatasetRefused(missing[0], f"named in {METADATA} but not in the set")
        if extra := sorted(wavs - named):
            raise DatasetRefused(extra[0], f"not named in {METADATA}")
        seconds = 0.0
        for path in sorted(wavs):
            with open(staging / path, "rb") as fh:
                seconds += check_wav(path, fh, limits)
        return {"rows": len(rows), "bytes": total, "audio_s": round(seconds, 1)}

    def _copy(self, member: Member, opener: Callable, staging: Path, limits: Limits, so_far: int) -> str:
        """Copy while counting and hashing; the source's declared size is not trusted."""
        cap = limits.file_bytes if member.name.lower().endswith(".wav") else limits.text_bytes
        dest = staging / member.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            src = opener()
        except OSError as exc:          # ELOOP: swapped for a link after it was looked at
            raise DatasetRefused(member.name, f"cannot be opened ({exc.strerror}); links are never followed") from None
        with src, open(dest, "xb") as out:
            while block := _read(member.name, src):
                size += len(block)
                if size > cap:
                    raise DatasetRefused(member.name, f"over the {cap}-byte limit for one file", "too_large")
                if so_far + size > limits.total_bytes:
                    raise DatasetRefused(member.name, f"the set passes the {limits.total_bytes}-byte limit here "
                                                      "([privacy] import_max_mb)", "too_large")
                out.write(block)
                digest.update(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(dest, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        return digest.hexdigest()


def _read(name: str, src) -> bytes:
    try:
        return src.read(CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:     # a damaged zip, or one whose header lies
        raise DatasetRefused(name, f"cannot be read whole from the zip ({exc})") from None
    except OSError as exc:
        raise DatasetRefused(name, f"cannot be read ({exc.strerror})") from None


def _name_from(source: Path) -> str:
    stem = source.name.removesuffix(".zip") if source.is_file() else source.resolve().name
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64]
    return name or "imported"
