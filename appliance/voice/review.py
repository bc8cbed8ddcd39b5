"""What Hearth heard, reviewed by a person: right or wrong, a corrected text, consent to export, delete.

Each stored utterance (appliance/voice/utterances.py: `<data>/utterances/<day>/<stem>.wav` + `.json`)
is named by its id `<day>/<stem>`. A person marks it right or wrong, may give the corrected text,
allows its export (the signed-in admin who clicked, and when), or deletes it. The review is kept in
the utterance's own JSON, under "review":

    {"state": "right" | "wrong", "corrected": "...", "reviewed_at": "...", "offered": ["bilge"],
     "consent": {"by": "admin", "from": "192.0.2.7", "at": "2025-05-01T10:00:00Z"}}

Why beside the JSON and not in SQLite: a review is about one recording and lives and dies with it.
The retention sweep and "Delete all" remove day folders, one delete here removes two files, and
nothing is left behind: no row pointing at audio that is gone, no corrected transcript outliving
its recording. The registry database, by contrast, is copied into snapshots (`<data>/snapshots`)
and backups, where a correction would survive the delete of its utterance. The cost is a scan of
the JSON files for a list or a filter: 3,000 utterances (30 days of 100) list in 0.37 s on the
2-core development machine, the words offered in 0.2 s.

A correction offers the words Hearth did not know (`offered`: what the correction has where the
transcript had something else) to the household word list (appliance/stt/vocabulary.py); a person
accepts or dismisses each on the Voice page.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from appliance.state.storage import atomic_write
from appliance.stt.vocabulary import MAX_CHARS, VocabularyError, check_word
from appliance.voice.utterances import DAY, UtteranceStore

MAX_CORRECTION_CHARS = 2000       # a 30 s command is a few hundred characters
STATES = ("unreviewed", "right", "wrong")
FILTER_STATES = (*STATES, "allowed")
STEM = re.compile(r"^\d{6}-\d{6}-[A-Za-z0-9_.-]{1,64}$")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# words too common to be a household's own, whatever a correction changed (English; other languages
# offer more and a person dismisses them)
COMMON = frozenset("""a an the and or but to of in on at for from by with is are was be it its this that
these those my your our his her their me you we he she they them what which who how when where why
not no yes do does did so as up out off on all any some set turn please can could would will""".split())


class ReviewError(ValueError):
    """A review the page cannot keep: `field` says which input, the message says the limit."""

    def __init__(self, field: str, message: str, code: str = "invalid"):
        super().__init__(message)
        self.field, self.code = field, code


class NotFound(LookupError):
    """No stored utterance has this id (never stored, deleted, or past its retention)."""


@dataclass(frozen=True)
class Filter:
    device: str = ""
    day: str = ""
    state: str = ""                  # one of FILTER_STATES, or "" for all

    def matches(self, row: dict) -> bool:
        if self.device and row["device"] != self.device:
            return False
        if self.day and row["day"] != self.day:
            return False
        if self.state == "allowed":
            return row["consent"] is not None
        return not self.state or row["state"] == self.state


def check_filter(device: str = "", day: str = "", state: str = "") -> Filter:
    if day and not DAY.match(day):
        raise ReviewError("day", "a day is written YYYY-MM-DD")
    if state and state not in FILTER_STATES:
        raise ReviewError("state", f"state is one of {', '.join(FILTER_STATES)}")
    if len(device) > 200:
        raise ReviewError("device", "no device has a name that long")
    return Filter(device, day, state)


def check_correction(text: object) -> str:
    if not isinstance(text, str):
        raise ReviewError("corrected", "the corrected transcript must be text")
    if len(text) > MAX_CORRECTION_CHARS:
        raise ReviewError("corrected", f"a corrected transcript is at most {MAX_CORRECTION_CHARS} characters "
                                       f"(this one has {len(text)}): nothing was changed", "too_long")
    text = " ".join(text.split())
    if not text.isprintable():
        raise ReviewError("corrected", "the corrected transcript may hold printable characters only")
    return text


def offered_words(heard: str, corrected: str, known: list[str]) -> list[str]:
    """The words and short phrases the correction has where the transcript had something else (what
    Hearth did not know), without the common ones and those already on the household's list."""
    said = [(m.group(), m.group().lower()) for m in WORD.finditer(corrected)]
    got = [w.lower() for w in WORD.findall(heard)]
    have = {k.lower() for k in known}
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, got, [low for _, low in said], autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag not in ("replace", "insert"):
            continue
        words = [orig for orig, low in said[j1:j2] if low not in COMMON and len(low) > 2 and not low.isdigit()]
        if not words:
            continue
        phrase = " ".join(words[:3])
        try:
            phrase = check_word(phrase[:MAX_CHARS])
        except VocabularyError:
            continue
        if phrase.lower() not in have and phrase not in out:
            out.append(phrase)
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Review:
    def __init__(self, store: UtteranceStore, known_words: Callable[[], list[str]] = lambda: []):
        self.store = store
        self.known_words = known_words      # the household's list now (appliance/stt/vocabulary.py)

    # --- finding ---------------------------------------------------------------------------------
    def path(self, uid: str) -> Path:
        """The JSON of utterance `uid` ("<day>/<stem>"); NotFound for anything else, `..` included."""
        day, _, stem = uid.partition("/")
        if not DAY.match(day) or not STEM.match(stem):
            raise NotFound(f"no stored utterance '{uid[:80]}'")
        path = self.store.root / day / f"{stem}.json"
        if not path.is_file():
            raise NotFound(f"no stored utterance '{uid}' (deleted, or older than the retention)")
        return path

    def audio(self, uid: str) -> Path:
        wav = self.path(uid).with_suffix(".wav")
        if not wav.is_file():
            raise NotFound(f"the audio of '{uid}' is gone")
        return wav

    def _rows(self) -> Iterator[dict]:
        """Every stored utterance, newest first."""
        for day in reversed(self.store._days()):
            for meta in sorted(day.glob("*.json"), reverse=True):
                if not STEM.match(meta.stem):
                    continue
                try:
                    yield self._row(day.name, meta.stem, json.loads(meta.read_text()))
                except (OSError, ValueError):     # deleted meanwhile, or not one of ours
                    continue

    @staticmethod
    def _row(day: str, stem: str, meta: dict) -> dict:
        review = meta.get("review") or {}
        return {"id": f"{day}/{stem}", "day": day, "time": meta.get("time", ""), "device": meta.get("device", ""),
                "device_name": meta.get("device_name") or meta.get("device", ""), "room": meta.get("room", ""),
                "device_type": meta.get("device_type", ""), "language": meta.get("language", ""),
                "text": meta.get("text", ""), "engine": meta.get("engine", ""), "model": meta.get("model", ""),
                "audio_s": meta.get("audio_s", 0), "state": review.get("state", "unreviewed"),
                "corrected": review.get("corrected", ""), "reviewed_at": review.get("reviewed_at", ""),
                "offered": review.get("offered", []), "consent": review.get("consent")}

    def get(self, uid: str) -> dict:
        path = self.path(uid)
        return self._row(path.parent.name, path.stem, json.loads(path.read_text()))

    def listing(self, flt: Filter = Filter(), limit: int = 50, offset: int = 0) -> dict:
        devices: dict[str, str] = {}
        days: list[str] = []
        counts = dict.fromkeys(FILTER_STATES, 0)
        shown: list[dict] = []
        total = 0
        for row in self._rows():
            devices.setdefault(row["device"], row["device_name"])
            if row["day"] not in days:
                days.append(row["day"])
            counts[row["state"]] += 1
            counts["allowed"] += row["consent"] is not None
            if flt.matches(row):
                if offset <= total < offset + limit:
                    shown.append(row)
                total += 1
        return {"utterances": shown, "total": total, "offset": offset, "limit": limit, "counts": counts,
                "devices": [{"id": k, "name": v} for k, v in sorted(devices.items(), key=lambda kv: kv[1].lower())],
                "days": days, "filter": {"device": flt.device, "day": flt.day, "state": flt.state}}

    # --- changing --------------------------------------------------------------------------------
    def _change(self, uid: str, fn: Callable[[dict], dict]) -> dict:
        with self.store._lock:
            path = self.path(uid)
            meta = json.loads(path.read_text())
            review = fn(dict(meta.get("review") or {}))
            if review:
                meta["review"] = review
            else:
                meta.pop("review", None)
            atomic_write(path, json.dumps(meta, ensure_ascii=False), self.store.root.parent)
        return self._row(path.parent.name, path.stem, meta)

    def mark(self, uid: str, state: object = None, corrected: object = None) -> dict:
        """Right, wrong (with or without the corrected text) or back to unreviewed. A corrected text
        alone means wrong; right drops any correction. Everything is checked before anything is written."""
        if state is None and corrected is None:
            raise ReviewError("state", "say right, wrong or unreviewed, or give the corrected text")
        if state is not None and state not in STATES:
            raise ReviewError("state", f"state is one of {', '.join(STATES)}")
        text = check_correction(corrected) if corrected is not None else None     # checked even when right
        heard = self.get(uid)["text"]
        known = self.known_words()

        def apply(review: dict) -> dict:
            if state == "unreviewed":
                return {}
            new_state = state or "wrong"
            review.update(state=new_state, reviewed_at=_now())
            if new_state == "right":
                review.pop("corrected", None)
                review["offered"] = []
            elif text:
                review["corrected"] = text
                review["offered"] = offered_words(heard, text, known)
            elif text is not None:           # an emptied box: wrong, no correction
                review.pop("corrected", None)
                review["offered"] = []
            return review
        return self._change(uid, apply)

    def consent(self, uid: str, allow: bool, by: str, address: str = "") -> dict:
        """Allow (or withdraw) the export of a reviewed utterance: who clicked and when travel with it."""
        def apply(review: dict) -> dict:
            if allow:
                if review.get("state") not in ("right", "wrong"):
                    raise ReviewError("consent", "review it first (right or wrong): only reviewed utterances "
                                                 "can be allowed for export", "not_reviewed")
                review["consent"] = {"by": by, "from": address, "at": _now()}
            else:
                review.pop("consent", None)
            return review
        return self._change(uid, apply)

    def delete(self, uid: str) -> None:
        """This utterance everywhere on the box: its audio, its text and review, the words it offered
        (exports already made are outside the box's reach)."""
        with self.store._lock:
            path = self.path(uid)
            path.with_suffix(".wav").unlink(missing_ok=True)
            path.unlink()

    def allowed(self) -> list[dict]:
        """What may be exported: reviewed and allowed, oldest first."""
        return [r for r in reversed(list(self._rows())) if r["consent"] and r["state"] in ("right", "wrong")]

    # --- words offered to the household's list ----------------------------------------------------
    def offers(self) -> list[dict]:
        """Words corrections offered that are not on the list yet: [{"word", "count", "example"}]."""
        have = {w.lower() for w in self.known_words()}
        found: dict[str, dict] = {}
        for row in self._rows():
            for word in row["offered"]:
                if word.lower() in have:
                    continue
                entry = found.setdefault(word.lower(), {"word": word, "count": 0, "example": row["corrected"]})
                entry["count"] += 1
        return sorted(found.values(), key=lambda e: (-e["count"], e["word"].lower()))

    def drop_offer(self, word: str) -> int:
        """A person accepted or dismissed `word`: no utterance offers it any more. Returns how many did."""
        low = word.lower()
        hits = [r["id"] for r in self._rows() if any(w.lower() == low for w in r["offered"])]
        for uid in hits:
            try:
                self._change(uid, lambda review: {**review,
                                                  "offered": [w for w in review.get("offered", []) if w.lower() != low]})
            except NotFound:
                continue
        return len(hits)


def install(service) -> None:
    """Room hook (appliance/service.py install_rooms, after utterances): service.review."""
    service.review = Review(service.utterances, service.vocabulary.words)
