"""Retained MQTT announcements: per device type (stable, after rollout) and per device (its offer).

Nothing is announced before its file is verified in the cache, so a device never hears of an
image Hearth cannot serve. An empty retained payload clears an offer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from firmware_cache.manifest import Release
from firmware_cache.registry import Registry
from firmware_cache.rollout import Rollout
from mqtt import device_type as device_types
from mqtt import firmware as fw

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], None]   # (topic, payload, qos, retain)


def download_path(sha256: str) -> str:
    return f"/firmware/{sha256}.bin"


class Announcer:
    def __init__(self, publish: Publish | None, registry: Registry, rollout: Rollout, base_url: str = ""):
        self._publish = publish
        self.registry = registry
        self.rollout = rollout
        self.base_url = base_url.rstrip("/")

    def send(self, topic: str, payload: bytes, retain: bool) -> None:
        if self._publish:
            self._publish(topic, payload, 1, retain)

    def url(self, release: Release) -> str:
        return self.base_url + download_path(release.sha256)

    def _md5(self, release: Release) -> str:
        blob = self.registry.blob(release.sha256)
        return blob["md5"] if blob else ""

    def announce_type(self, device_type: str) -> Release | None:
        release = self.rollout.released(device_type, "stable")
        if release is not None and self._publish:
            msg = fw.FirmwareAnnounce(
                device_type=device_type, channel="stable", version=release.version, url=self.url(release),
                size=release.size, sha256=release.sha256, md5=self._md5(release), notes=release.notes,
            )
            self._publish(fw.type_firmware(device_type), msg.to_payload(), 1, True)
        return release

    def offer_device(self, device: str) -> Release | None:
        release = self.rollout.offer_for(device)
        if not self._publish:
            return release
        if release is None:
            self._publish(fw.offer(device), b"", 1, True)
            return None
        rollout = self.registry.rollout(release.device_type, release.channel, release.version)
        canary = rollout is not None and rollout["state"] != "done" and rollout["canary"] == device
        msg = fw.FirmwareOffer(
            version=release.version, channel=release.channel, url=self.url(release), size=release.size,
            sha256=release.sha256, md5=self._md5(release), notes=release.notes, rollout="canary" if canary else "all",
        )
        self._publish(fw.offer(device), msg.to_payload(), 1, True)
        return release

    def announce(self, device_type: str) -> None:
        """The type's announce and the offer of every device of the type."""
        self.announce_type(device_type)
        for row in self.registry.devices(device_type):
            self.offer_device(row["device"])

    def announce_all(self) -> None:
        for row in self.registry.types():
            if not device_types.is_valid(row["device_type"]):     # stored before the one rule: no topic for it
                log.warning("not announcing firmware for device type %r: %s", row["device_type"], device_types.RULE)
                continue
            self.announce(row["device_type"])
