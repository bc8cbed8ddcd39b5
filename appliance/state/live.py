"""Settings changed at run time (the web page): validate, write the config file, swap them live.

`apply(service, section, changes)` checks each value (types as the config file would, plus the
ranges and names below), and only when every field is good writes the whole config file and swaps
`service.settings`, then hands the new tree to the parts that can take it without a restart:
the session manager (endpointing, language), the speaker and voices (default voice), the privacy
store (reads service.settings itself), and any `service.settings_listeners` (e.g. the wake-word room).
A bad value raises `InvalidSettings` with one message per field, and nothing changes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import typing
from collections.abc import Callable

from appliance.state import config
from appliance.state.storage import atomic_write
from firmware_cache.manifest import CHANNELS

log = logging.getLogger(__name__)
_write_lock = threading.Lock()

# which sections apply without a restart
LIVE = {"tts", "endpoint", "wake", "privacy"}
LIVE_KEYS = {("stt", "language"), ("stt", "partial_interval_ms"), ("web", "metrics_token"),
             ("firmware", "manifest_url"), ("update", "channel")}


class InvalidSettings(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _range(lo, hi) -> Callable:
    def check(value):
        if not lo <= value <= hi:
            return f"must be between {lo:g} and {hi:g}"
        return None
    return check


# extra checks beyond the type: (section, key) -> fn(value, service) -> message | None
CHECKS: dict[tuple[str, str], Callable] = {
    ("endpoint", "silence_ms"): lambda v, s: _range(100, 3000)(v),
    ("endpoint", "threshold"): lambda v, s: _range(0.05, 0.95)(v),
    ("endpoint", "min_speech_ms"): lambda v, s: _range(0, 2000)(v),
    ("endpoint", "no_speech_timeout_ms"): lambda v, s: _range(1000, 60000)(v),
    ("endpoint", "commit_silence_ms"): lambda v, s: _range(0, 3000)(v),
    ("endpoint", "max_silence_ms"): lambda v, s: _range(100, 10000)(v),
    ("endpoint", "confident_silence"): lambda v, s: _range(0.0, 1.0)(v),
    ("endpoint", "early_speculation"): lambda v, s: _range(0.0, 1.0)(v),
    ("wake", "sensitivity"): lambda v, s: _range(0.0, 1.0)(v),
    ("wake", "engine"): lambda v, s: None if v in ("openwakeword", "microwakeword") else "must be openwakeword or microwakeword",
    ("wake", "model"): lambda v, s: None if v in wake_models() else f"unknown wake word (have: {', '.join(wake_models())})",
    ("privacy", "retention_days"): lambda v, s: _range(1, 3650)(v),
    ("stt", "language"): lambda v, s: None if v in LANGUAGES else "pick a language from the list",
    ("stt", "partial_interval_ms"): lambda v, s: None if v == 0 or 250 <= v <= 5000 else "0 (off) or 250 to 5000",
    ("stt", "model"): lambda v, s: _stt_model(v),
    ("stt", "budget_ms"): lambda v, s: _range(50, 10000)(v),
    ("tts", "voice"): lambda v, s: None if v in s.voices.available else f"unknown voice (have: {', '.join(sorted(s.voices.available))})",
    ("update", "channel"): lambda v, s: None if v in CHANNELS else f"must be one of {', '.join(CHANNELS)}, not '{v[:40]}'",
}

LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
             "nl": "Dutch", "pt": "Portuguese", "ko": "Korean"}


def stt_models() -> list[str]:
    """What stt.model may be set to from the page: auto, or an installed model."""
    from appliance.stt.models import installed
    return ["auto", *installed()]


def _stt_model(value: str) -> str | None:
    from pathlib import Path
    if value in stt_models() or (value.startswith("/") and (Path(value) / "model.bin").is_file()):
        return None
    return f"pick one of {', '.join(stt_models())}, or a model directory holding a model.bin"


def wake_models() -> list[str]:
    return ["hey_mycroft", "okay_nabu", "alexa", "hey_jarvis", "hey_rhasspy"]


def coerce(section: str, raw: dict) -> tuple[dict, dict[str, str]]:
    """Form strings (or JSON values) -> typed values for one section; (values, errors)."""
    cls = config.SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values, errors = {}, {}
    for key, value in raw.items():
        if key not in fields:
            errors[key] = f"unknown setting {section}.{key}"
            continue
        want = hints[key]
        try:
            values[key] = _coerce(value, want)
        except (TypeError, ValueError):
            errors[key] = {bool: "must be on or off", int: "must be a whole number",
                           float: "must be a number", str: "must be text"}[want]
    return values, errors


def _coerce(value, want):
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes", "off", "false", "0", "no", ""):
            return value.lower() in ("on", "true", "1", "yes")
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if want is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if want is float:
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return value.strip()


def validate(service, section: str, raw: dict) -> dict:
    if section not in config.SECTIONS:
        raise InvalidSettings({"section": f"unknown section [{section}]"})
    values, errors = coerce(section, raw)
    for key, value in values.items():
        check = CHECKS.get((section, key))
        message = check(value, service) if check else None
        if message:
            errors[key] = message
    if errors:
        raise InvalidSettings(errors)
    try:
        service.settings.with_changes(section, **values)
    except config.ConfigError as exc:
        raise InvalidSettings({"section": str(exc)}) from None
    return values


def apply(service, section: str, raw: dict) -> dict:
    """Validate, persist and swap. Returns {"changed": {...}, "restart_needed": [keys]}."""
    values = validate(service, section, raw)
    with _write_lock:
        new = service.settings.with_changes(section, **values)
        write(new)
        old, service.settings = service.settings, new
    changed = {k: v for k, v in values.items() if getattr(getattr(old, section), k) != v}
    _hand_out(service, new)
    restart = sorted(f"{section}.{k}" for k in changed
                     if section not in LIVE and (section, k) not in LIVE_KEYS)
    if changed:
        log.info("settings changed on the web page: %s", ", ".join(f"{section}.{k}" for k in changed))
    return {"changed": changed, "restart_needed": restart}


def write(settings: config.Settings) -> None:
    """The whole config file, atomically (a full disk raises DiskFull and leaves the old file)."""
    path = config.config_path(settings.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "# Written by Hearth's web page; every key and its default: docs/config.md.\n\n"
                 + config.to_toml(settings), settings.data_dir)


def swap(service, new: config.Settings) -> None:
    """Make `new` the live settings (already written) and hand it to the parts that take it."""
    with _write_lock:
        service.settings = new
    _hand_out(service, new)


def _hand_out(service, new: config.Settings) -> None:
    if hasattr(service, "sessions"):
        service.sessions.settings = new
    if hasattr(service, "speaker"):
        service.speaker.settings = new.tts
        service.voices.settings = new.tts
    if hasattr(service, "integrity"):          # the saved file goes into a snapshot shortly
        service.integrity.changed()
    for listener in getattr(service, "settings_listeners", []):
        try:
            listener(new)
        except Exception:
            log.exception("settings listener %s failed", listener)
