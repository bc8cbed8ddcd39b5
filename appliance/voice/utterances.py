"""Household training data: final transcripts with their audio, kept only when the household opts in.

Off by default (`[privacy] store_utterances = false`). When on, every final transcript that a
device's session produces is saved under `<data>/utterances/<YYYY-MM-DD>/` as `<stamp>-<device>.wav`
(16 kHz mono, the audio the engine heard) and `.json` (text, device, time, engine, model, language,
the device's name, room and type). A sweep deletes days older than `retention_days` every hour and at
start; the Privacy page reviews it (appliance/voice/review.py), exports what a person allowed
(appliance/voice/dataset.py) or deletes it. The settings are read at every use, so a change on the
web page applies at once.

Below the low-disk reserve (`[storage] reserve_mb`), or on a full disk, nothing new is stored: the
device still gets its transcript, then an `Error` (`low_disk` or `disk_full`, with the session as
ref) saying the utterance was not kept. Each file is written whole or not at all.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from appliance.audio.pcm import ENGINE_FORMAT, wav_bytes
from appliance.devices.errors import DeviceError
from appliance.state.config import PrivacySettings
from appliance.state.storage import Disk, StorageError, atomic_write
from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class UtteranceStore:
    def __init__(self, root: Path, privacy: Callable[[], PrivacySettings], disk: Disk | None = None):
        self.root = Path(root)
        self.privacy = privacy
        self.disk = disk
        self._lock = threading.Lock()
        # fn(device, ProtocolError) when an utterance was not stored (install: the device's error topic)
        self.on_refused: Callable[[str, ProtocolError], None] = lambda device, error: None
        # fn(device) -> what else the review and the dataset need: device_name, room, device_type, model,
        # language (install: from the registry and the running engine; appliance/voice/review.py)
        self.describe: Callable[[str], dict] = lambda device: {}

    def on_final(self, device: str, session: str, text: str, audio: bytes, engine: str) -> Path | None:
        """SessionManager's final-transcript hook: save audio + text when storing is on."""
        if not self.privacy().store_utterances or not text.strip() or not audio:
            return None
        now = datetime.now()
        folder = self.root / now.strftime("%Y-%m-%d")
        stem = f"{now.strftime('%H%M%S-%f')}-{SAFE.sub('_', device)[:64]}"
        meta = {"text": text, "device": device, "session": session, "engine": engine,
                "time": now.isoformat(timespec="seconds"), "audio_s": round(len(audio) / ENGINE_FORMAT.bytes_per_second, 3),
                **self.describe(device)}
        data_dir = self.root.parent
        try:
            if self.disk is not None:
                self.disk.check_reserve("storing utterances")
            with self._lock:
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    atomic_write(folder / f"{stem}.wav", wav_bytes(audio, ENGINE_FORMAT.rate), data_dir)
                    atomic_write(folder / f"{stem}.json", json.dumps(meta, ensure_ascii=False), data_dir)
                except StorageError:
                    (folder / f"{stem}.wav").unlink(missing_ok=True)     # never audio without its text
                    raise
        except StorageError as exc:
            log.warning("utterance from %s not stored: %s", device, exc)
            self.on_refused(device, ProtocolError(exc.code, f"utterance not stored: {exc}", session))
            return None
        return folder / f"{stem}.json"

    def _days(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and DAY.match(p.name))

    def summary(self) -> dict:
        count = size = 0
        days = self._days()
        for day in days:
            for f in day.iterdir():
                if f.name.startswith("."):       # a write in progress (temp file, renamed or removed any moment)
                    continue
                try:
                    size += f.stat().st_size
                except FileNotFoundError:        # deleted meanwhile (retention, or a person's delete)
                    continue
                count += f.suffix == ".json"
        return {"utterances": count, "bytes": size, "oldest": days[0].name if days else None,
                "newest": days[-1].name if days else None}

    def recent(self, limit: int = 20) -> list[dict]:
        rows = []
        for day in reversed(self._days()):
            for meta in sorted(day.glob("*.json"), reverse=True):
                try:
                    rows.append(json.loads(meta.read_text()))
                except (OSError, ValueError):
                    continue
                if len(rows) >= limit:
                    return rows
        return rows

    def sweep(self, today: date | None = None) -> int:
        """Delete days older than the retention; returns how many day folders went."""
        keep = self.privacy().retention_days
        cutoff = (today or date.today()) - timedelta(days=keep)
        removed = 0
        with self._lock:
            for day in self._days():
                if date.fromisoformat(day.name) < cutoff:
                    shutil.rmtree(day, ignore_errors=True)
                    removed += 1
        if removed:
            log.info("privacy: removed %d day(s) of stored utterances older than %d days", removed, keep)
        return removed

    def delete_all(self) -> int:
        with self._lock:
            days = self._days()
            for day in days:
                shutil.rmtree(day, ignore_errors=True)
        log.info("privacy: all stored utterances deleted")
        return len(days)


class Sweeper:
    """Runs the retention sweep at start and then every `interval_s`."""

    def __init__(self, store: UtteranceStore, interval_s: float = 3600.0):
        self.store = store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="privacy-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.store.sweep()
            except OSError:
                log.exception("privacy sweep failed")
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def install(service) -> None:
    """Room hook (appliance/service.py install_rooms): service.utterances, fed by the session manager's final transcripts."""
    store = UtteranceStore(service.settings.data_dir / "utterances", lambda: service.settings.privacy,
                           service.disk)
    store.on_refused = lambda device, error: _tell(service, device, error)
    store.describe = lambda device: describe(service, device)
    service.utterances = store
    service.sessions.on_final.append(store.on_final)
    sweeper = Sweeper(store)
    sweeper.start()
    service._stoppers.append(sweeper.stop)


def describe(service, device: str) -> dict:
    """The device as the registry knows it now (a login that is no paired device: its id only), the model
    that decoded and the language, kept with the utterance so a later rename or revoke changes nothing."""
    out = {"device_name": device, "room": "", "device_type": "", "model": str(getattr(service.engine, "model", "")),
           "language": service.settings.stt.language}
    devices = getattr(service, "devices", None)
    if devices is not None:
        try:
            d = devices.get(device)
        except DeviceError:
            return out
        out.update(device_name=d.name, room=d.room, device_type=d.device_type)
    return out


def _tell(service, device: str, error: ProtocolError) -> None:
    """An MQTT device hears why its utterance was not stored; other edges (Hermes, Wyoming) only the log."""
    if device not in service.sessions.sinks:
        service.metrics.error(time.time(), f"{device}: {error.code}")
        service.replies.error(device, error)
