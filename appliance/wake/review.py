"""Wake-word review: short clips of what the wake word got wrong, for a person to mark.

Off by default (`[privacy] store_wake_clips = false`, its own switch beside storing utterances).
When on, two kinds of moment are kept under `<data>/wake-review/<YYYY-MM-DD>/<time>-<device>.wav`
(16 kHz mono, at most CLIP_S) and `.json` (kind, device, time, text, mark):

- `no_command`: the wake word was detected and no command followed (the person said nothing, or
  "never mind"): the two seconds before the session (the wake word) and the session's audio. A
  person marks it `false_wake` (nobody said it) or `fine` (it was said).
- `no_detection`: a streaming satellite's command began without a detection (a button, another
  edge): its first seconds. A person marks it `missed_wake` (the wake word was said, unheard) or
  `fine`.

The Overview counts them per device. Kept as long as utterances (`retention_days`), the same
low-disk reserve refuses new ones, and at most MAX_CLIPS are kept unmarked: a satellite that
wakes on the television every minute fills nothing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from appliance.audio.pcm import ENGINE_BYTES_PER_S, ENGINE_FORMAT, wav_bytes
from appliance.state.config import PrivacySettings
from appliance.state.storage import Disk, StorageError, atomic_write
from appliance.voice.utterances import SAFE, UtteranceStore

log = logging.getLogger(__name__)
CLIP_S = 8.0
MAX_CLIPS = 500
KINDS = {"no_command": ("false_wake", "fine"), "no_detection": ("missed_wake", "fine")}
CANCEL = re.compile(r"^(never ?mind|cancel|forget it|nothing|no thanks?|stop)$")
CLIP_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})/([0-9]{6}-[0-9]{6}-[A-Za-z0-9_.-]{1,64})$")
REMEMBER = 64                 # wake sessions whose final has not come yet (a dropped one is forgotten)


class ReviewError(ValueError):
    def __init__(self, message: str, code: str = "bad_request"):
        super().__init__(message)
        self.code = code


class Woken:
    """The wake thread's note of each session it opened, with the audio before it (the wake word),
    read once by the review when that session's final comes (the chores thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def add(self, device: str, session: str, before: bytes) -> None:
        with self._lock:
            self._sessions[(device, session)] = before
            while len(self._sessions) > REMEMBER:
                self._sessions.popitem(last=False)

    def take(self, device: str, session: str) -> bytes | None:
        with self._lock:
            return self._sessions.pop((device, session), None)


def cancelled(text: str) -> bool:
    return bool(CANCEL.match(re.sub(r"[^a-z ]+", "", text.lower()).strip()))


class WakeReview(UtteranceStore):
    """The clips, their marks and the counts; the day folders, retention and delete as utterances'."""

    def __init__(self, root: Path, privacy: Callable[[], PrivacySettings], disk: Disk | None,
                 woken: Woken, streaming: Callable[[str], bool]):
        super().__init__(root, privacy, disk)
        self.woken = woken
        self.streaming = streaming          # does this device stream to the wake word thread now?

    def on_final(self, device: str, session: str, text: str, audio: bytes, engine: str) -> Path | None:
        """The session manager's final-transcript hook (chores thread)."""
        before = self.woken.take(device, session)
        if not self.privacy().store_wake_clips:
            return None
        said = text.strip() and not cancelled(text)
        if before is not None and not said:
            kind, clip = "no_command", before + audio
        elif before is None and said and self.streaming(device):
            kind, clip = "no_detection", audio
        else:
            return None
        if self.summary()["utterances"] >= MAX_CLIPS:
            log.warning("wake review: %d clips kept already; %s from %s not kept (mark or delete some)", MAX_CLIPS, kind, device)
            return None
        return self._keep(device, kind, text, clip[:int(CLIP_S * ENGINE_BYTES_PER_S)])

    def _keep(self, device: str, kind: str, text: str, clip: bytes) -> Path | None:
        now = datetime.now()
        folder = self.root / now.strftime("%Y-%m-%d")
        stem = f"{now.strftime('%H%M%S-%f')}-{SAFE.sub('_', device)[:64]}"
        meta = {"id": f"{folder.name}/{stem}", "kind": kind, "device": device, "text": text.strip(), "mark": "",
                "time": now.isoformat(timespec="seconds"), "audio_s": round(len(clip) / ENGINE_BYTES_PER_S, 2)}
        try:
            if self.disk is not None:
                self.disk.check_reserve("keeping wake word clips")
            with self._lock:
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write(folder / f"{stem}.wav", wav_bytes(clip, ENGINE_FORMAT.rate), self.root.parent)
                atomic_write(folder / f"{stem}.json", json.dumps(meta, ensure_ascii=False), self.root.parent)
        except StorageError as exc:
            (folder / f"{stem}.wav").unlink(missing_ok=True)
            log.warning("wake review: %s from %s not kept: %s", kind, device, exc)
            return None
        log.info("wake review: kept a %s clip from %s", kind, device)
        return folder / f"{stem}.json"

    def _file(self, clip_id: str, suffix: str) -> Path:
        match = CLIP_ID.match(clip_id or "")
        if not match:
            raise ReviewError(f"'{clip_id}' is not a clip id (YYYY-MM-DD/HHMMSS-ffffff-device)")
        path = self.root / match.group(1) / f"{match.group(2)}{suffix}"
        if not path.is_file():
            raise ReviewError(f"no clip {clip_id} (deleted, or older than the retention)", "not_found")
        return path

    def audio(self, clip_id: str) -> Path:
        return self._file(clip_id, ".wav")

    def mark(self, clip_id: str, mark: str) -> dict:
        path = self._file(clip_id, ".json")
        with self._lock:
            meta = json.loads(path.read_text())
            allowed = KINDS[meta["kind"]]
            if mark not in (*allowed, ""):
                raise ReviewError(f"a {meta['kind']} clip is marked {' or '.join(allowed)} (or '' to unmark), not '{mark}'")
            meta["mark"] = mark
            atomic_write(path, json.dumps(meta, ensure_ascii=False), self.root.parent)
        return meta

    def clips(self, device: str = "", kind: str = "", mark: str | None = None, limit: int = 200) -> list[dict]:
        """Newest first, filtered by device, kind and mark ('' unmarked, None any)."""
        rows = []
        for meta in self._all():
            if (device and meta["device"] != device) or (kind and meta["kind"] != kind) \
                    or (mark is not None and meta["mark"] != mark):
                continue
            rows.append(meta)
            if len(rows) >= limit:
                break
        return rows

    def counts(self) -> dict[str, dict]:
        """Per device: clips of each kind, and how many a person marked false_wake / missed_wake / fine."""
        out: dict[str, dict] = {}
        for meta in self._all():
            c = out.setdefault(meta["device"], {"no_command": 0, "no_detection": 0, "false_wake": 0,
                                                "missed_wake": 0, "fine": 0, "unmarked": 0})
            c[meta["kind"]] += 1
            c[meta["mark"] or "unmarked"] += 1
        return dict(sorted(out.items()))

    def _all(self):
        for day in reversed(self._days()):
            for path in sorted(day.glob("*.json"), reverse=True):
                try:
                    meta = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if meta.get("kind") in KINDS:
                    yield meta
