"""Who may install what: release channels and staged rollouts.

A device follows `stable` or `beta` (beta falls back to stable while the beta channel has no
release). When a release becomes current on a channel whose type has staged rollout on, one
device (the canary: the first by id that does not run it yet) is offered it alone; the others keep
being offered the previous release. The canary's success report releases it to all; any failure
report for that version pauses the rollout (state `paused`, with the device's error) until a person
resumes it.
"""

from __future__ import annotations

import time

from firmware_cache.errors import UnknownFirmware
from firmware_cache.manifest import Release
from firmware_cache.registry import Registry

CANARY, DONE, PAUSED = "canary", "done", "paused"


class Rollout:
    def __init__(self, registry: Registry):
        self.registry = registry

    def begin(self, release: Release) -> dict:
        """Start rolling out a release that just became current."""
        devices = [
            d["device"] for d in self.registry.devices(release.device_type)
            if self.follows(d) == release.channel and d["version"] != release.version
        ]
        staged = self.registry.staged(release.device_type) and len(devices) > 1
        row = {
            "device_type": release.device_type, "channel": release.channel, "version": release.version,
            "canary": devices[0] if staged else "", "state": CANARY if staged else DONE, "error": "",
            "started_at": time.time(),
        }
        self.registry.save_rollout(row)
        return row

    def follows(self, device: dict) -> str:
        """The channel whose release this device is offered (beta falls back to stable)."""
        if device["channel"] == "beta" and self.registry.channel(device["device_type"], "beta")["current"]:
            return "beta"
        return "stable"

    def on_result(self, device: str, version: str, ok: bool, error: str) -> dict | None:
        """Move the rollout of `version` on after a device's report; returns it when its state changed."""
        row = self.registry.device(device)
        if row is None:
            return None
        rollout = self.registry.rollout(row["device_type"], self.follows(row), version)
        if rollout is None or rollout["state"] == PAUSED:
            return None
        if not ok:
            self.registry.save_rollout({**rollout, "state": PAUSED, "error": f"{device}: {error or 'failed'}"})
            return self.registry.rollout(rollout["device_type"], rollout["channel"], version)
        if rollout["state"] == CANARY and rollout["canary"] == device:
            self.registry.save_rollout({**rollout, "state": DONE})
            return self.registry.rollout(rollout["device_type"], rollout["channel"], version)
        return None

    def resume(self, device_type: str, channel: str = "stable") -> dict:
        current = self.registry.current(device_type, channel)
        if current is None:
            raise UnknownFirmware(f"no {channel} release of '{device_type}' to resume")
        rollout = self.registry.rollout(device_type, channel, current.version) or self.begin(current)
        self.registry.save_rollout({**rollout, "state": DONE, "error": ""})
        return self.registry.rollout(device_type, channel, current.version)

    def released(self, device_type: str, channel: str, device: str | None = None) -> Release | None:
        """The release `device` (None: any device of the type) may install now on this channel."""
        current = self.registry.current(device_type, channel)
        if current is None:
            return None
        rollout = self.registry.rollout(device_type, channel, current.version)
        if rollout is None or rollout["state"] == DONE:
            return current
        if rollout["state"] == CANARY and device is not None and rollout["canary"] == device:
            return current
        previous = self.registry.channel(device_type, channel)["previous"]
        return self.registry.release(device_type, channel, previous) if previous else None

    def offer_for(self, device: str) -> Release | None:
        row = self.registry.device(device)
        if row is None or not row["device_type"]:
            return None
        return self.released(row["device_type"], self.follows(row), device)
