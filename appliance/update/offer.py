"""Hearth's own releases from the firmware cache: Hearth is the device type `hearth-appliance`.

A manifest for `hearth-appliance` (docs/firmware.md) carries `compatible`: a release for another
compatible (another architecture) is refused before a byte is fetched. One for this box is fetched
once by the cache (resumable, sha256 against the manifest, the manifest's Ed25519 signature when
`firmware.public_key` is set), then its RAUC signature is checked against the box's keyring, and
the System page offers it. The box follows `[update] channel`, chosen on the System page and read
at each offer (beta falls back to stable while beta has no release, as a device's channel does in
firmware_cache/rollout.py); staged rollout does not apply to a single box. The cache fetches both
channels' releases for this box, so switching channels offers the other one at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from appliance.update.errors import UpdateError
from firmware_cache.errors import ManifestError
from firmware_cache.manifest import Release

log = logging.getLogger(__name__)

DEVICE_TYPE = "hearth-appliance"


class CacheOffer:
    def __init__(self, cache, updates):
        self.cache, self.updates = cache, updates
        self._checked: dict[str, tuple[str, str]] = {}    # sha256 -> (state, message): RAUC looks once
        self._lock = threading.Lock()

    def compatible(self) -> str | None:
        try:
            return self.updates.installer.system().compatible
        except UpdateError:
            return None

    def install(self) -> None:
        """Follow `hearth-appliance` in the cache, on the appliance only."""
        if self.compatible() is None:
            return
        self.cache.add_type(DEVICE_TYPE, staged=False)
        self.cache.accepts[DEVICE_TYPE] = self.accept

    def accept(self, release: Release) -> None:
        ours = self.compatible()
        if release.compatible != ours:
            raise ManifestError(f"{DEVICE_TYPE} {release.version} is for '{release.compatible or 'no compatible'}', "
                                f"this box is '{ours}': not fetched")

    @property
    def channel(self) -> str:
        return self.updates.channel

    def release(self) -> Release | None:
        registry = self.cache.registry
        if self.channel == "beta" and (beta := registry.current(DEVICE_TYPE, "beta")):
            return beta
        return registry.current(DEVICE_TYPE, "stable")

    def describe(self, running: str = "", boots_next: str = "") -> dict | None:
        """What the System page offers: {version, channel, state, message}, or None. `running`: the
        booted slot's version; `boots_next`: the version of the other slot when it boots next."""
        release = self.release()
        if release is None:
            return None
        doc = {"version": release.version, "channel": release.channel, "size": release.size,
               "notes": release.notes, "state": "downloading", "message": ""}
        if not self.cache.blobs.has(release.sha256):
            return doc
        state, message = self._verify(release)
        doc.update(state=state, message=message)
        if state == "ready" and running == release.version:
            doc.update(state="running", message=f"this box already runs {release.version}")
        elif state == "ready" and boots_next == release.version:
            doc.update(state="installed", message=f"{release.version} is installed and starts after a reboot")
        return doc

    def _verify(self, release: Release) -> tuple[str, str]:
        with self._lock:
            if release.sha256 not in self._checked:
                try:
                    checked = self.updates.installer.verify(self.cache.blobs.path(release.sha256))
                    self._checked[release.sha256] = ("ready", f"signed by {checked.bundle.signer}" if
                                                     checked.bundle.signer else "verified")
                except UpdateError as exc:
                    log.warning("%s %s from the firmware cache refused: %s", DEVICE_TYPE, release.version, exc)
                    self._checked[release.sha256] = ("refused", str(exc))
            return self._checked[release.sha256]

    def path_for(self, version: str) -> Path:
        release = self.release()
        if release is None or release.version != version:
            raise UpdateError(f"the firmware cache offers no {DEVICE_TYPE} {version or '(no version given)'}"
                              + (f" (it offers {release.version})" if release else ""), "no_offer")
        if not self.cache.blobs.has(release.sha256):
            raise UpdateError(f"{DEVICE_TYPE} {version} is still downloading", "not_ready")
        state, message = self._verify(release)
        if state != "ready":
            raise UpdateError(message, "bad_bundle")
        return self.cache.blobs.path(release.sha256)
