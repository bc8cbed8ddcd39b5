"""`service.devices`: the one API the web page, the command line and the device API use.

Every change goes to SQLite first and bumps the registry's generation; `apply()` then makes the
world match: the broker's password file and ACL (with a reload, which also drops the sessions of
logins that are gone) and each device's retained settings. In the service a watcher thread runs
`apply()` when another process (the command line) changed the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.state.config import Settings
from appliance.devices.errors import BadSetting
from appliance.devices.pairing import Activation, Pairing, PendingCode
from appliance.devices.registry import Device, Registry, check_name
from appliance.devices.settings import SettingsBook
from appliance.devices.skills import SkillsBook
from appliance.devices.tokens import TokenBook
from appliance.state.store import Store
from mqtt import devices as wire
from mqtt.broker import Account

log = logging.getLogger(__name__)
APPLIED_KEY = "devices.applied"     # the generation the running service has applied (the CLI waits for it)


class Devices:
    def __init__(self, store: Store, settings: Settings, voices: Callable[[], list[str]] = lambda: []):
        self.config = settings
        self.registry = Registry(store)
        self.tokens = TokenBook(store, settings.devices.token_ttl_s)
        self.pairing = Pairing(store, self.registry, self.tokens, settings.devices)
        self.book = SettingsBook(store, settings, voices)
        self.skills = SkillsBook(store)
        self.store = store
        # wired by install(service); harmless no-ops for the command line
        self.sync_broker: Callable[[], None] = lambda: None
        self.publish: Callable[[str, bytes, int, bool], None] = lambda *a: None
        self._published: dict[str, bytes] = {}      # device -> settings payload last published
        self._accounts: frozenset | None = None     # logins last written to the broker
        self._applied = -1
        self.on_activated: list = []      # fn(Device) after a device has paired
        self._lock = threading.RLock()
        self.live = False            # True in the running service (install sets it)

    # pairing
    def request_code(self, state: str, client_addr: str, device_type: str = "mycroft", platform: str = "",
                     name: str = "") -> tuple[str, str]:
        return self.pairing.request_code(state, client_addr, device_type, platform, name)

    def pending(self) -> list[PendingCode]:
        return self.pairing.pending()

    def confirm(self, code: str, name: str | None = None, room: str = "", request: str | None = None) -> Device:
        device = self.pairing.confirm(code, name, room, request)
        self.apply()
        return device

    def activate(self, state: str, token: str, client_addr: str, platform: str = "", firmware: str = "") -> Activation:
        """The device's poll; on success its login is in the broker before this returns."""
        activation = self.pairing.activate(state, token, client_addr, platform, firmware)
        self.apply()
        for hook in self.on_activated:      # e.g. the firmware cache learns the device and its type
            hook(activation.device)
        return activation

    # the registry
    def list(self, include_revoked: bool = False) -> list[Device]:
        return self.registry.list(include_revoked)

    def get(self, device_id: str) -> Device:
        return self.registry.get(device_id)

    def find(self, key: str) -> Device:
        return self.registry.find(key)

    def rename(self, device_id: str, name: str) -> Device:
        return self._change(device_id, name=check_name(name))

    def move(self, device_id: str, room: str) -> Device:
        return self._change(device_id, room=check_name(room, "room") if room else "")

    def revoke(self, device_id: str) -> Device:
        device = self.registry.revoke(device_id)
        self.apply()
        return device

    def _change(self, device_id: str, **values) -> Device:
        device = self.registry.update(device_id, **values)
        self.apply()
        return device

    # settings
    def settings(self, device_id: str) -> dict:
        self.registry.get(device_id)
        return self.book.effective(device_id)

    def overrides(self, device_id: str) -> dict:
        self.registry.get(device_id)
        return self.book.overrides(device_id)

    def update_settings(self, device_id: str, **values) -> dict:
        """Override household defaults for one device (None clears one). Raises BadSetting."""
        self.registry.get(device_id)
        if not values:
            raise BadSetting("no settings given")
        with self.store.transaction() as tx:
            self.book.update(device_id, values, tx)
            self.registry.bump(tx)
        self.apply()
        return self.book.effective(device_id)

    def household(self) -> dict:
        return self.book.household()

    def update_household(self, **values) -> dict:
        result = self.book.update_household(**values)
        with self.store.transaction() as tx:
            self.registry.bump(tx)
        self.apply()
        return result

    def settings_message(self, device: Device) -> wire.DeviceSettings:
        return wire.DeviceSettings.of(device.name, device.room, self.book.effective(device.id))

    # the broker and the devices
    def accounts(self) -> list[Account]:
        return self.registry.broker_accounts()

    def publish_settings(self, device_id: str, force: bool = False) -> None:
        device = self.registry.get(device_id)
        payload = self.settings_message(device).to_payload()
        if force or self._published.get(device.id) != payload:
            self.publish(wire.settings(device.id), payload, 1, True)
            self._published[device.id] = payload

    def apply(self, republish: bool = False) -> None:
        """Make the broker and the devices' retained settings match the registry.

        `republish`: send every device's settings (and clear revoked ones) even if unchanged, as
        after a (re)connect to the broker."""
        with self._lock:
            generation = self.registry.generation()
            accounts = frozenset(self.accounts())
            if accounts != self._accounts:
                self.sync_broker()
                self._accounts = accounts
            for device in self.registry.list(include_revoked=True):
                if device.revoked_at:
                    if device.id in self._published or republish:
                        for topic in (wire.settings(device.id), wire.status(device.id)):
                            self.publish(topic, b"", 1, True)      # clear what was retained for it
                        self._published.pop(device.id, None)
                elif device.activated_at:
                    self.publish_settings(device.id, republish)
            self._applied = generation
            if self.live:
                self.store.put(APPLIED_KEY, str(generation))

    def changed_elsewhere(self) -> bool:
        return self.registry.generation() != self._applied
