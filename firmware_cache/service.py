"""FirmwareCache: the one object the service builds; it ties sources, store, fetch, rollout and MQTT together.

    cache = FirmwareCache(settings.firmware, settings.data_dir, store, publish=conn.publish)
    cache.start()          # periodic check, resume downloads, re-announce
    conn.subscribe(...) for firmware.SUBSCRIPTIONS; route those topics to cache.handle(topic, payload)
    web.firmware_routes.install(app, cache)

Every verified image goes through one path (`_verified`): recorded, made current when it is the
newest release seen on its channel, rolled out, announced.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.state.config import FirmwareSettings
from appliance.state.store import Store
from firmware_cache import esphome, importer
from firmware_cache.announce import Announcer, Publish
from firmware_cache.blobs import BlobStore
from firmware_cache.errors import (
    BadDeviceType, FirmwareError, IntegrityError, ManifestError, NotReady, Rejected, UnknownFirmware,
)
from firmware_cache.fetch import Fetcher, FetchOptions, get_manifest
from firmware_cache.manifest import CHANNELS, SHA256, Release, load_public_key, parse
from firmware_cache.quota import Quota
from firmware_cache.registry import FAILED, REJECTED, Registry, as_release
from firmware_cache.rollout import Rollout
from firmware_cache.schedule import CheckSchedule, retry_delay_s
from firmware_cache.verify import Digests
from mqtt import device_type as device_types
from mqtt import firmware as fw
from mqtt.messages import Error, ProtocolError
from mqtt.topics import error as error_topic
from mqtt.topics import parse as parse_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one check or import did for one (type, channel)."""

    device_type: str
    channel: str
    version: str = ""
    state: str = ""          # cached | none | error
    error: str = ""


class FirmwareCache:
    def __init__(
        self,
        settings: FirmwareSettings,
        data_dir: Path,
        store: Store,
        publish: Publish | None = None,
        fetch_options: FetchOptions | None = None,
    ):
        self.settings = settings
        self.public_key = load_public_key(settings.public_key)
        self.blobs = BlobStore(Path(data_dir) / "firmware")
        self.registry = Registry(store, staged_default=settings.staged_rollout)
        self.rollout = Rollout(self.registry)
        self.announcer = Announcer(publish, self.registry, self.rollout, settings.base_url)
        self.quota = Quota(self.blobs, self.registry, settings.quota_mb * 2**20)
        self.options = fetch_options or FetchOptions(timeout_s=settings.fetch_timeout_s)
        self._room_lock = threading.Lock()
        self._verified_lock = threading.RLock()
        self.fetcher = Fetcher(self.blobs, self.options, self._make_room, self._verified, on_failed=self._failed)
        self.schedule = CheckSchedule(self.check, settings.check_interval_min)
        # per device type, a check a release must pass before it is recorded or fetched (raises
        # ManifestError): Hearth's own bundles must be for this box's compatible (appliance/update/offer.py)
        self.accepts: dict[str, Callable[[Release], None]] = {}

    # life cycle
    def start(self) -> None:
        for name in self.blobs.tidy():
            log.info("removed the firmware leftover partial/%s", name)
        self.announcer.announce_all()
        for row in self.registry.releases():
            unfinished = row["state"] == "pending" or self.blobs.partial(row["sha256"]).exists()
            if unfinished and row["state"] not in ("ready", REJECTED) and row["source"] == "upstream":
                release = self.registry.release(row["device_type"], row["channel"], row["version"])
                self.fetcher.start(release)  # resumes from its partial file
        self.schedule.start()

    def stop(self) -> None:
        self.schedule.stop()
        self.fetcher.close()

    # sources
    def add_type(self, device_type: str, manifest_url: str | None = None, staged: bool | None = None) -> None:
        try:
            device_types.check(device_type)
        except device_types.BadDeviceType as exc:
            raise BadDeviceType(str(exc)) from None
        self.registry.add_type(device_type, manifest_url, staged)

    def manifest_url(self, device_type: str, channel: str) -> str:
        rows = [r for r in self.registry.types() if r["device_type"] == device_type]
        template = (rows[0]["manifest_url"] if rows else "") or self.settings.manifest_url
        return template.replace("{type}", device_type).replace("{channel}", channel)

    def check(self, device_type: str | None = None, force: bool = False) -> list[Outcome]:
        """Read every upstream manifest (or one type's) and fetch what is new; waits for the downloads.

        A release that failed before waits out its backoff, unless `force` (a person asked)."""
        types = [device_type] if device_type else [r["device_type"] for r in self.registry.types()]
        outcomes = []
        for dtype in types:
            for channel in CHANNELS:
                url = self.manifest_url(dtype, channel)
                if url:
                    outcomes.append(self._check_one(dtype, channel, url, force))
        return outcomes

    def _check_one(self, device_type: str, channel: str, url: str, force: bool = False) -> Outcome:
        release = None
        try:
            raw = get_manifest(url, self.options)
            if raw is None:
                self.registry.note_check(device_type, channel, "")
                return Outcome(device_type, channel, state="none")
            release = parse(raw, device_type=device_type, channel=channel, base_url=url,
                            public_key=self.public_key, origin=url)
            if release.channel != channel:
                raise ManifestError(f"{url}: says channel '{release.channel}', fetched as '{channel}'")
            if accept := self.accepts.get(device_type):
                accept(release)
            self.registry.record_release(release, "upstream")
            if self.blobs.has(release.sha256):
                self._verified(release, None)
            else:
                row = self.registry.release_row(release)
                if not force and row is not None and (held := self._held_back(row, by_request=False)):
                    raise held
                self.fetcher.fetch(release)     # a failure is recorded (with its backoff) by _failed
        except FirmwareError as exc:
            self.registry.note_check(device_type, channel, str(exc))
            return Outcome(device_type, channel, release.version if release else "", state="error", error=str(exc))
        self.registry.note_check(device_type, channel, "")
        return Outcome(device_type, channel, release.version, "cached")

    def import_dir(self, folder: Path) -> list[Outcome]:
        outcomes = []
        for found in importer.scan(Path(folder), self.public_key):
            if found.error is not None or found.release is None:
                outcomes.append(Outcome("?", "?", state="error", error=str(found.error)))
                continue
            release = found.release
            try:
                if accept := self.accepts.get(release.device_type):
                    accept(release)
                self.registry.record_release(release, "import")
                if not self.blobs.has(release.sha256):
                    self._make_room(release.size, release)
                    digests = importer.copy_verified(found, self.blobs)
                    self._verified(release, digests)
                else:
                    self._verified(release, None)
                outcomes.append(Outcome(release.device_type, release.channel, release.version, "cached"))
            except FirmwareError as exc:
                self.registry.set_release_state(release, "failed", str(exc))
                outcomes.append(Outcome(release.device_type, release.channel, release.version, "error", str(exc)))
        return outcomes

    def _make_room(self, needed: int, release: Release) -> None:
        """The one place that asks "may I write `needed` more bytes?" before a download or an import:
        the firmware quota (evicting old images), then the disk. A refusal is a QuotaError."""
        what = f"{release.device_type} {release.version}"
        with self._room_lock:
            busy = set(self.fetcher.in_flight()) | {release.sha256}
            self.quota.make_room(needed, what, busy)
        self.blobs.require_disk(needed, what)

    def _failed(self, release: Release, exc: FirmwareError) -> None:
        """A download failed: remember it with a backoff, so no request can make Hearth fetch it again."""
        rejected = isinstance(exc, IntegrityError)
        for known in self.registry.releases_by_sha(release.sha256):
            row = self.registry.note_failure(known, REJECTED if rejected else FAILED, str(exc),
                                             lambda n: retry_delay_s(n, rejected))
            log.warning("firmware %s %s %s (%d in a row; next try after %s): %s", known.device_type, known.version,
                        row["state"], row["failures"], _clock(row["retry_at"]), exc)

    @staticmethod
    def _held_back(row: dict, by_request: bool) -> FirmwareError | None:
        """Why this release may not be fetched now; None when it may.

        A rejected image is never fetched for a request, only by the check once its backoff ran out."""
        now, what = time.time(), f"{row['device_type']} {row['version']}"
        if row["state"] == REJECTED and (by_request or row["retry_at"] > now):
            return Rejected(f"{what} was rejected ({row['error']}); Hearth tries upstream again at a scheduled "
                            f"check after {_clock(row['retry_at'])}, or run 'hearth firmware check {row['device_type']}'")
        if row["state"] == FAILED and row["retry_at"] > now:
            wait = int(row["retry_at"] - now) + 1
            return NotReady(f"{what}: the last download failed ({row['error']}); tried again after "
                            f"{_clock(row['retry_at'])}", retry_after_s=wait)
        return None

    def _verified(self, release: Release, digests: Digests | None) -> None:
        """A file with this release's sha256 is now in the store, verified."""
        with self._verified_lock:
            if digests is not None:
                self.registry.note_blob(release.sha256, digests.md5)
            for known in self.registry.releases_by_sha(release.sha256):
                self.registry.set_release_state(known, "ready")
                newest = self._newest(known.device_type, known.channel)
                if newest == known.version and self.registry.make_current(known):
                    self.rollout.begin(known)
                    self.announcer.announce(known.device_type)

    def _newest(self, device_type: str, channel: str) -> str:
        rows = [r for r in self.registry.releases() if r["device_type"] == device_type and r["channel"] == channel]
        return max(rows, key=lambda r: r["seen_at"])["version"] if rows else ""

    # serving
    def ensure(self, sha256: str, wait_s: float | None = None) -> Path:
        """The verified file for this sha256, fetching it (once) if a known release names it."""
        if not SHA256.match(sha256):
            raise UnknownFirmware(f"'{sha256[:80]}' is not a sha256 (64 lowercase hex digits)")
        if self.blobs.has(sha256):
            self.registry.touch_blob(sha256)
            return self.blobs.path(sha256)
        rows = [r for r in self.registry.release_rows_by_sha(sha256) if r["url"].startswith(("http://", "https://"))]
        if not rows:
            raise UnknownFirmware(f"no firmware image with sha256 {sha256} is known here")
        if sha256 not in self.fetcher.in_flight():       # joining a running download is always fine
            held = [self._held_back(r, by_request=True) for r in rows]
            rows = [r for r, why in zip(rows, held) if why is None]
            if not rows:
                raise held[0]
        release = as_release(rows[0])
        future = self.fetcher.start(release)
        wait = self.settings.serve_wait_s if wait_s is None else wait_s
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            done = self.fetcher.in_flight().get(sha256, 0)
            raise NotReady(f"still downloading ({done} of {release.size} bytes); try again shortly") from None

    def esphome_manifest(self, device_type: str, base_url: str, channel: str = "stable") -> dict:
        if channel not in CHANNELS:
            raise UnknownFirmware(f"channel must be one of {CHANNELS}")
        release = self.rollout.released(device_type, channel)
        if release is None or not self.blobs.has(release.sha256):
            raise UnknownFirmware(f"no {channel} firmware for device type '{device_type}' is cached here")
        blob = self.registry.blob(release.sha256) or {"md5": ""}
        return esphome.manifest(release, blob["md5"], base_url.rstrip("/") + self.announcer.url(release))

    # devices
    def register_device(self, device: str, device_type: str, channel: str | None = None) -> None:
        self.registry.set_device(device, device_type, channel)
        self.announcer.offer_device(device)

    def set_channel(self, device: str, channel: str) -> None:
        if channel not in CHANNELS:
            raise UnknownFirmware(f"channel must be one of {CHANNELS}, not '{channel}'")
        if self.registry.device(device) is None:
            raise UnknownFirmware(f"no device '{device}' has reported firmware yet")
        self.registry.set_device(device, channel=channel)
        self.announcer.offer_device(device)

    def resume_rollout(self, device_type: str, channel: str = "stable") -> dict:
        row = self.rollout.resume(device_type, channel)
        self.announcer.announce(device_type)
        return row

    def handle(self, topic: str, payload: bytes) -> None:
        """A device's firmware report (state, progress, result) from MQTT."""
        inbound = parse_topic(topic)
        if inbound is not None:
            self.handle_report(inbound.device, inbound.kind, payload)

    def handle_report(self, device: str, kind: str, payload: bytes) -> None:
        """`kind` is firmware/state, firmware/progress or firmware/result; others are ignored."""
        if kind not in fw.MESSAGES:
            return
        try:
            msg = fw.MESSAGES[kind].from_payload(payload)
        except ProtocolError as exc:
            self.announcer.send(error_topic(device), Error.of(exc).to_payload(), retain=False)
            return
        self.apply_report(device, msg)

    def apply_report(self, device: str, msg) -> None:
        """A checked report into the registry (registry writes: never on the MQTT network thread)."""
        match msg:
            case fw.FirmwareState():
                self.registry.set_device(device, msg.device_type, version=msg.version, error="")
                self.announcer.offer_device(device)
            case fw.FirmwareProgress():
                percent = int(100 * msg.bytes / msg.total) if msg.total else 0
                self.registry.set_device(device, state=msg.state, progress=percent)
            case fw.FirmwareResult():
                running = msg.running or (msg.version if msg.ok else "")
                fields = {"state": "ok" if msg.ok else "failed", "error": msg.error, "progress": 100 if msg.ok else 0}
                self.registry.set_device(device, **({"version": running} if running else {}), **fields)
                changed = self.rollout.on_result(device, msg.version, msg.ok, msg.error)
                if changed is not None:
                    self.announcer.announce(changed["device_type"])

    # reporting
    def status(self) -> dict:
        usage = self.blobs.usage()
        return {
            "quota_bytes": self.quota.quota_bytes,
            "used_bytes": usage,
            "types": self.registry.types(),
            "channels": self.registry.channels(),
            "releases": self.registry.releases(),
            "downloading": self.fetcher.in_flight(),
            "rollouts": self.registry.rollouts(),
            "devices": self.registry.devices(),
        }


def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
