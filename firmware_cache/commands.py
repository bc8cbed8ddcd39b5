"""What `hearth firmware ...` does, as named actions on one FirmwareCache.

The same code runs in both places a command can act: inside the running service (asked over the
control channel, appliance/process/control.py, so its downloads join the service's single-flight and its
changes are announced at once) or, when no service runs, in the command itself under the
service lock. Results are plain JSON-able dicts; the command line prints them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from firmware_cache.errors import FirmwareError

ACTIONS = ("firmware.status", "firmware.check", "firmware.import", "firmware.channel", "firmware.resume")


def perform(cache, action: str, params: dict) -> dict:
    """Run one action on `cache` (a firmware_cache.service.FirmwareCache)."""
    match action:
        case "firmware.status":
            return cache.status()
        case "firmware.check":
            device_type, url = params.get("type"), params.get("url")
            if url:
                if not device_type:
                    raise FirmwareError("--url needs a device TYPE")
                cache.add_type(device_type, manifest_url=url)
            if not device_type and not cache.registry.types():
                raise FirmwareError("no device types known yet: give TYPE and --url, or pair a device first")
            outcomes = cache.check(device_type, force=True)      # a person asked: no backoff
            if not outcomes:
                raise FirmwareError("no upstream manifest URL: set firmware.manifest_url or give --url")
            return {"outcomes": [asdict(o) for o in outcomes]}
        case "firmware.import":
            return {"outcomes": [asdict(o) for o in cache.import_dir(Path(params["dir"]))]}
        case "firmware.channel":
            cache.set_channel(params["device"], params["channel"])
            return {}
        case "firmware.resume":
            return {"rollout": cache.resume_rollout(params["type"], params.get("channel", "stable"))}
    raise FirmwareError(f"unknown firmware action '{action}'")


def install(control, cache) -> None:
    """Offer every action on the service's control channel."""
    for action in ACTIONS:
        control.register(action, lambda params, action=action: perform(cache, action, params))
