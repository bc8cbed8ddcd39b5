"""Wiring the devices into the running service (appliance/service.py install_rooms): presence, settings/get,
the registry watcher, `service.devices` and `service.wyoming_access`."""

from __future__ import annotations

import logging
import threading

from appliance.devices.errors import DeviceError
from appliance.devices.manager import Devices
from appliance.devices.presence import BrokerLog, Presence
from appliance.devices.wyoming_clients import WyomingAccess
from mqtt import devices as wire
from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 0.5
PRESENCE_EVERY_S = 1.0       # a device's presence is written at most this often (its newest status wins)
SETTINGS_EVERY_S = 1.0       # settings/get is answered at most this often per device


def install(service) -> Devices:
    from appliance.process.broker import broker_config

    devices = Devices(service.store, service.settings, voices=lambda: sorted(service.voices.available))
    devices.sync_broker = service.sync_broker
    devices.publish = service._publish
    devices.live = True
    service.devices = devices
    service.wyoming_access = WyomingAccess(service.store, devices.registry, service.settings.wyoming)

    # nothing slow on the network thread: registry writes and settings look-ups run as chores
    presence = Presence(devices.registry, BrokerLog(broker_config(service.settings).transports, service.settings.broker.tls_port),
                        service.settings.limits.max_json_bytes,
                        defer=lambda key, fn: service.chores.latest(key, fn, device=key[1], every=PRESENCE_EVERY_S))
    service.subscriptions += [t for t in wire.SUBSCRIPTIONS if t not in service.subscriptions]
    service.inbound.extra["status"] = lambda device, ref, payload: presence.on_status(device, payload)
    service.inbound.extra["settings/get"] = lambda device, ref, payload: _settings_get(
        service, devices, device, payload, service.settings.limits.max_json_bytes)
    service.after_connect.append(lambda: devices.apply(republish=True))

    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(devices, service.wyoming_access, stop), name="devices-watch", daemon=True)
    service.after_start.append(watcher.start)
    service._stoppers.append(lambda: (stop.set(), watcher.join(timeout=2) if watcher.is_alive() else None))
    devices.apply()            # the broker learns the registry's logins now
    return devices


def _settings_get(service, devices: Devices, device: str, payload: bytes, max_json: int) -> None:
    wire.SettingsGet.from_payload(payload, max_json)      # checked on the network thread, answered as a chore
    service.chores.latest(("settings", device), lambda: _publish_settings(devices, device), device=device,
                          every=SETTINGS_EVERY_S)


def _publish_settings(devices: Devices, device: str) -> None:
    try:
        devices.publish_settings(device, force=True)
    except DeviceError as exc:
        raise ProtocolError(exc.code, exc.message) from None


def _watch(devices: Devices, wyoming: WyomingAccess, stop: threading.Event) -> None:
    """Apply changes made by another process (`hearth devices ...`) to the broker, the devices and
    the Wyoming server (a revoked client's connections are cut)."""
    while not stop.wait(WATCH_INTERVAL_S):
        try:
            if devices.changed_elsewhere():
                wyoming.refresh()
                devices.apply()
        except Exception:        # the registry or the broker files; try again next round
            log.exception("applying a registry change failed")
