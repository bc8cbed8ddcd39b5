"""The updates room (installed by appliance/service.py install_rooms): one Updates object, its control actions, the boot check.

    update.ping          answers {} (for `hearth update confirm`: the service is up)
    update.status        both slots, the last update, the install in progress, the cache's offer
    update.install       {"file": PATH, "source": "usb"|"upload"|"cache", "remove": bool}: verify, install, wait
    update.install_cached  {"version": V}: install the release the firmware cache offers
    update.mark_good     mark the booted slot good (after `hearth update confirm` saw Hearth healthy)

The same actions run inside the command when no service runs (appliance/process/control.py `call`).
At start the room tells what the reboot did to the last install (installed -> booted, or
rolled_back when the old slot came back) and writes it down once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.state.config import Settings
from appliance.update import slots
from appliance.update.errors import NotAppliance, UpdateError
from appliance.update.installer import Installer

log = logging.getLogger(__name__)

ACTIONS = ("update.ping", "update.status", "update.install", "update.install_cached", "update.mark_good")
SOURCES = ("usb", "upload", "cache")


class Updates:
    def __init__(self, settings: Settings, current: Callable[[], Settings] | None = None):
        self.settings = settings
        self.current = current or (lambda: self.settings)    # the live settings: the System page sets the channel
        self.installer = Installer(settings.update, settings.data_dir)
        self.incoming = settings.data_dir / "update" / "incoming"
        self.offer = None        # appliance.update.offer.CacheOffer, when the firmware cache runs

    @property
    def channel(self) -> str:
        """stable | beta: which `hearth-appliance` releases the box is offered ([update] channel)."""
        return self.current().update.channel

    @property
    def last(self):
        return self.installer.last

    def tidy(self) -> None:
        """Uploads and copies left by a crash or a power cut (never verified, never installed)."""
        if self.incoming.is_dir():
            for leftover in self.incoming.iterdir():
                leftover.unlink(missing_ok=True)
                log.info("removed the leftover update file %s", leftover.name)

    def assess_boot(self) -> None:
        try:
            status = slots.read(self.installer.system())
        except UpdateError as exc:
            if not isinstance(exc, NotAppliance):
                log.warning("update status at start: %s", exc)
            return
        changed = self.last.assess(status, self.settings.update.boot_tries)
        if changed is not None:
            (log.warning if changed["result"] == "rolled_back" else log.info)("update: %s", changed["message"])

    def status(self) -> dict:
        doc: dict = {"available": True, "reason": "", "last": self.last.read(),
                     "progress": self.installer.progress.to_dict(), "offer": None, "channel": self.channel,
                     "slots": [], "booted": "", "primary": "", "compatible": ""}
        try:
            status = slots.read(self.installer.system())
        except NotAppliance as exc:
            doc.update(available=False, reason=str(exc))
            return doc
        except UpdateError as exc:
            doc.update(reason=str(exc))
            status = None
        if status is not None:
            doc.update(status.to_dict())
        if self.offer is not None:
            booted = status.by_bootname(status.booted) if status else None
            next_up = [s.version for s in status.slots if not s.booted and status.primary in (s.name, s.bootname)] \
                if status else []
            doc["offer"] = self.offer.describe(booted.version if booted else "", next_up[0] if next_up else "")
        return doc

    def install(self, path: Path, source: str, remove: bool = False) -> dict:
        try:
            self.installer.begin()
        except UpdateError:
            if remove:
                Path(path).unlink(missing_ok=True)
            raise
        return self.installer.finish(path, source, remove)

    def install_in_background(self, path: Path, source: str, remove: bool = False) -> None:
        """For the web page: verified and installed on a thread; the page polls `status()['progress']`."""
        self.installer.system()          # NotAppliance now, not in the thread
        self.installer.begin()           # Busy now, not in the thread
        threading.Thread(target=self._background, args=(path, source, remove), name="update", daemon=True).start()

    def _background(self, path: Path, source: str, remove: bool) -> None:
        try:
            self.installer.finish(path, source, remove)
        except UpdateError as exc:
            log.warning("update from %s: %s", source, exc)
        except Exception:
            log.exception("update from %s failed", source)

    def mark_good(self) -> dict:
        rauc = self.installer.system()
        said = slots.mark_good(rauc)
        status = slots.read(rauc)
        record = self.last.marked_good(status)
        log.info("update: %s", said)
        return {"rauc": said, "booted": status.booted, "last": record or self.last.read()}


def perform(updates: Updates, action: str, params: dict) -> dict:
    match action:
        case "update.ping":
            return {}
        case "update.status":
            return updates.status()
        case "update.install":
            source = params.get("source", "usb")
            if source not in SOURCES:
                raise UpdateError(f"source must be one of {SOURCES}", "bad_request")
            return {"last": updates.install(Path(params["file"]), source, bool(params.get("remove")))}
        case "update.install_cached":
            if updates.offer is None:
                raise UpdateError("the firmware cache does not run here", "no_offer")
            return {"last": updates.install(updates.offer.path_for(str(params.get("version", ""))), "cache")}
        case "update.mark_good":
            return updates.mark_good()
    raise UpdateError(f"unknown update action '{action}'", "bad_request")


def install(service) -> Updates:
    updates = Updates(service.settings, current=lambda: service.settings)
    service.updates = updates
    updates.tidy()
    updates.incoming.mkdir(parents=True, exist_ok=True)    # by the service's user: uploads and USB copies land here
    updates.assess_boot()
    if control := getattr(service, "control", None):
        for action in ACTIONS:
            control.register(action, lambda params, action=action: perform(updates, action, params))
    if cache := getattr(service, "firmware", None):
        from appliance.update.offer import CacheOffer
        updates.offer = CacheOffer(cache, updates)
        updates.offer.install()
    return updates
