"""Per-device settings over the household's defaults: language, wake word, voice, units, time
format, location. A device's effective settings are the household's with its own overrides on
top; `None` clears an override. Every value is checked here, once, with a message that says what
a good value looks like.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from appliance.state.config import Settings
from appliance.devices.errors import BadSetting
from appliance.state.store import Store

HOUSEHOLD_KEY = "devices.household"
KEYS = ("language", "wake_word", "voice", "units", "time_format", "location")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
WAKE_WORD = re.compile(r"^[a-z0-9_]{2,40}$")


def check_location(value) -> dict:
    if not isinstance(value, dict):
        raise BadSetting("location must be an object: {name, latitude, longitude, timezone}")
    unknown = set(value) - {"name", "latitude", "longitude", "timezone"}
    if unknown:
        raise BadSetting(f"location has unknown fields {sorted(unknown)} (use name, latitude, longitude, timezone)")
    out = {"name": value.get("name", ""), "latitude": value.get("latitude", 0.0),
           "longitude": value.get("longitude", 0.0), "timezone": value.get("timezone", "UTC")}
    if not isinstance(out["name"], str) or len(out["name"]) > 100:
        raise BadSetting("location.name must be text of at most 100 characters")
    for key, limit in (("latitude", 90), ("longitude", 180)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -limit <= v <= limit:
            raise BadSetting(f"location.{key} must be a number from -{limit} to {limit}")
        out[key] = float(v)
    if not isinstance(out["timezone"], str) or not re.match(r"^[A-Za-z0-9_+/-]{1,64}$", out["timezone"]):
        raise BadSetting("location.timezone must be an IANA name such as Europe/Oslo")
    return out


class SettingsBook:
    def __init__(self, store: Store, settings: Settings, voices: Callable[[], list[str]]):
        self.store = store
        self.defaults = {"language": settings.stt.language, "wake_word": settings.wake.model,
                         "voice": settings.tts.voice, "units": "metric", "time_format": "24h",
                         "location": {"name": "", "latitude": 0.0, "longitude": 0.0, "timezone": "UTC"}}
        self.voices = voices

    def check(self, key: str, value):
        match key:
            case "language":
                if not isinstance(value, str) or not LANGUAGE.match(value):
                    raise BadSetting("language must be a language code such as en or en-US")
            case "wake_word":
                if not isinstance(value, str) or not WAKE_WORD.match(value):
                    raise BadSetting("wake_word must be a wake-word model name such as hey_mycroft")
            case "voice":
                known = self.voices()
                if value not in known:
                    raise BadSetting(f"unknown voice {value!r}; installed voices: {', '.join(known) or 'none'}")
            case "units":
                if value not in ("metric", "imperial"):
                    raise BadSetting("units must be metric or imperial")
            case "time_format":
                if value not in ("12h", "24h"):
                    raise BadSetting("time_format must be 12h or 24h")
            case "location":
                return check_location(value)
            case _:
                raise BadSetting(f"unknown setting {key!r} (known: {', '.join(KEYS)})")
        return value

    def household(self) -> dict:
        stored = json.loads(self.store.get(HOUSEHOLD_KEY, "{}") or "{}")
        return {**self.defaults, **{k: v for k, v in stored.items() if k in KEYS}}

    def update_household(self, **values) -> dict:
        stored = json.loads(self.store.get(HOUSEHOLD_KEY, "{}") or "{}")
        for key, value in values.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = self.check(key, value)
        self.store.put(HOUSEHOLD_KEY, json.dumps(stored))
        return self.household()

    def overrides(self, device_id: str) -> dict:
        rows = self.store.db.query("select key, value from devices_settings where device_id = ?", [device_id])
        return {r["key"]: json.loads(r["value"]) for r in rows}

    def effective(self, device_id: str) -> dict:
        return {**self.household(), **self.overrides(device_id)}

    def update(self, device_id: str, values: dict, tx) -> None:
        """Write overrides inside the caller's transaction (all checked first: all or nothing)."""
        clean = {key: (None if value is None else self.check(key, value)) for key, value in values.items()}
        for key, value in clean.items():
            if value is None:
                tx.execute("delete from devices_settings where device_id = ? and key = ?", [device_id, key])
            else:
                tx["devices_settings"].upsert({"device_id": device_id, "key": key, "value": json.dumps(value)},
                                              pk=("device_id", "key"))
