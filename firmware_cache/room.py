"""Wiring into the service (appliance/service.py install_rooms): `install(service)` builds the one FirmwareCache.

It uses the service's store, settings and publish function, subscribes to the devices' firmware
reports (the wiring adds its download routes, web/firmware_routes.py, to the web app), re-announces after every broker (re)connect,
offers `hearth firmware ...` on the control channel, and starts the periodic check once the
service runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from firmware_cache import commands
from firmware_cache.service import FirmwareCache
from mqtt import firmware as fw

REPORT_EVERY_S = 0.5        # a device's reports of one kind reach the registry at most this often (its newest wins)


class Reports:
    """Devices' firmware reports: checked on the network thread (a bad one raises ProtocolError, which
    the device hears on its error topic), written to the registry as a chore. A device flooding
    reports (60,000 at QoS 1 once delayed another device's finals 15.8 s while each was a database
    write on the network thread) now costs a parse each: per device only the newest report of each
    kind waits, applied in the order their newest copies arrived, at most every REPORT_EVERY_S."""

    def __init__(self, cache: FirmwareCache, chores, max_json: int):
        self.cache, self.chores, self.max_json = cache, chores, max_json
        self._lock = threading.Lock()
        self._waiting: dict[str, OrderedDict] = {}     # device (a login) -> kind -> its newest report

    def on_report(self, device: str, kind: str, payload: bytes) -> None:
        msg = fw.MESSAGES[kind].from_payload(payload, self.max_json)
        with self._lock:
            mine = self._waiting.setdefault(device, OrderedDict())
            mine.pop(kind, None)
            mine[kind] = msg
        self.chores.latest(("firmware", device), lambda: self._apply(device), device=device, every=REPORT_EVERY_S)

    def _apply(self, device: str) -> None:
        with self._lock:
            mine = self._waiting.pop(device, {})
        for msg in mine.values():
            self.cache.apply_report(device, msg)


def install(service) -> FirmwareCache:
    cache = FirmwareCache(service.settings.firmware, service.settings.data_dir, service.store, service._publish)
    service.firmware = cache
    cache.blobs.reserve = service.disk.reserve_bytes        # fetches leave the low-disk reserve free
    service.report_subscriptions.extend(fw.SUBSCRIPTIONS)
    reports = Reports(cache, service.chores, service.settings.limits.max_json_bytes)
    for kind in fw.MESSAGES:
        service.inbound.extra[kind] = lambda device, ref, payload, kind=kind: reports.on_report(device, kind, payload)
    if control := getattr(service, "control", None):
        commands.install(control, cache)
    service.after_connect.append(cache.announcer.announce_all)
    service.after_start.append(cache.start)
    service._stoppers.append(cache.stop)
    if devices := getattr(service, "devices", None):
        # a paired device follows its type's releases from the start (before its first firmware report)
        devices.on_activated.append(lambda device: cache.register_device(device.id, device.device_type))
    return cache
