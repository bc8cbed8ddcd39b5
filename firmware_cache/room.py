"""Wiring into the service (appliance.service.ROOMS): `install(service)` builds the one FirmwareCache.

It uses the service's store, settings and publish function, subscribes to the devices' firmware
reports, adds the download routes to the web app, re-announces after every broker (re)connect,
offers `hearth firmware ...` on the control channel, and starts the periodic check once the
service runs.
"""

from __future__ import annotations

from firmware_cache import commands
from firmware_cache.service import FirmwareCache
from mqtt import firmware as fw


def install(service) -> FirmwareCache:
    from web import firmware_routes

    cache = FirmwareCache(service.settings.firmware, service.settings.data_dir, service.store, service._publish)
    service.firmware = cache
    cache.blobs.reserve = service.disk.reserve_bytes        # fetches leave the low-disk reserve free
    service.subscriptions.extend(fw.SUBSCRIPTIONS)
    for kind in fw.MESSAGES:
        service.inbound.extra[kind] = lambda device, ref, payload, kind=kind: cache.handle_report(device, kind, payload)
    service.web_installers.append(lambda app: firmware_routes.install(app, cache))
    if control := getattr(service, "control", None):
        commands.install(control, cache)
    service.after_connect.append(cache.announcer.announce_all)
    service.after_start.append(cache.start)
    service._stoppers.append(cache.stop)
    if devices := getattr(service, "devices", None):
        # a paired device follows its type's releases from the start (before its first firmware report)
        devices.on_activated.append(lambda device: cache.register_device(device.id, device.device_type))
    return cache
