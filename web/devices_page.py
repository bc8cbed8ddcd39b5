"""Devices: pairing requests waiting for a person to type their code, the household's devices
(online, last seen, room, type, firmware) with rename, move, revoke and per-device settings, and
the Wyoming clients (Home Assistant) allowed or waiting, by address.

    GET  /devices                          the page
    GET  /api/devices                      {"pending": [...], "devices": [...], "wyoming": {...}}
    POST /api/devices/confirm              {"code": "ABC123", "request"?: id}: let the device that shows this code in
    POST /api/devices/<id>                 {"name": ..., "room": ...}: rename and/or move
    POST /api/devices/<id>/revoke          remove the device and its logins
    GET  /api/devices/<id>/settings        the device's settings
    POST /api/devices/<id>/settings        change them: {"key": value, ...}
    POST /api/wyoming/allow                {"address": "192.168.1.5"}: let that Wyoming client use speech
    POST /api/wyoming/revoke               {"address": ...}: take it back (its connections are cut) or dismiss it

Pending requests are listed without their codes: the person types the code the device shows.

The registry is `service.devices` (the device room); without it the page says so.
"""

from __future__ import annotations

import dataclasses
import re

import bottle

from appliance.state import live
from web.pages import as_json, bad_request, body, form_reply, render

NAME = re.compile(r"^[^\x00-\x1f<>]{1,64}$")


def registry(service):
    return getattr(service, "devices", None)


def as_dict(row) -> dict:
    if isinstance(row, dict):
        return dict(row)
    if hasattr(row, "to_dict"):
        return row.to_dict()
    if dataclasses.is_dataclass(row):
        return dataclasses.asdict(row)
    return dict(vars(row))


def listing(service, with_settings: bool = False) -> dict:
    reg = registry(service)
    if reg is None:
        return {"available": False, "pending": [], "devices": [], "wyoming": wyoming_listing(service)}
    devices = [as_dict(d) for d in reg.list()]
    if with_settings:
        for d in devices:
            d["settings"] = device_settings(reg, d["id"])
    return {"available": True, "pending": [p.public() for p in reg.pending()], "devices": devices,
            "wyoming": wyoming_listing(service)}


def wyoming_listing(service) -> dict:
    access = getattr(service, "wyoming_access", None)
    if access is None:
        return {"enabled": False, "waiting": [], "allowed": []}
    return {"enabled": service.settings.wyoming.enabled, "port": service.settings.wyoming.port,
            "waiting": [c.to_dict() for c in access.waiting()], "allowed": [c.to_dict() for c in access.allowed()]}


def device_settings(reg, device_id: str) -> dict:
    """A device's effective settings (its own values over the household's defaults)."""
    return reg.settings(device_id)


def settings_fields(fields: dict) -> dict:
    """Form fields -> registry values: 'location.name' etc. become one location object."""
    values, location = {}, {}
    for key, value in fields.items():
        if key.startswith("location."):
            sub = key.split(".", 1)[1]
            if sub in ("latitude", "longitude") and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"location.{sub} must be a number") from None
            location[sub] = value
        else:
            values[key] = value
    if location:
        values["location"] = location
    return values


def check_text(value, what: str) -> tuple[str, str | None]:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return text, f"{what} cannot be empty"
    if not NAME.match(text):
        return text, f"{what}: 1 to 64 characters, no < or >"
    return text, None


def registry_error(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else exc.__class__.__name__


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("devices", title="Devices", d=listing(service, with_settings=True), errors=errors or {},
                      values=values or {}, voices=sorted(service.voices.available), wake_words=live.wake_models(),
                      languages=live.LANGUAGES)

    def need_registry():
        if registry(service) is None:
            raise bad_request("this Hearth has no device registry", "unavailable", 503)
        return registry(service)

    @app.get("/devices")
    def devices_page():
        return page()

    @app.get("/api/devices")
    def get_devices():
        return as_json(listing(service))

    @app.post("/api/devices/confirm")
    def confirm():
        reg = need_registry()
        fields = body()
        code = re.sub(r"[\s-]", "", str(fields.get("code") or "")).upper()
        name = str(fields.get("name") or "").strip() or None
        room = str(fields.get("room") or "").strip()
        request = str(fields.get("request") or "").strip() or None
        if request and not re.fullmatch(r"[0-9a-f]{16}", request):
            return form_reply(page, "/devices", {"code": "unknown pairing request: reload the page"}, values=fields)
        slot = f"{request}.code" if request else "code"       # the message goes next to the field typed in
        if not re.fullmatch(r"[A-Z0-9]{4,12}", code):
            return form_reply(page, "/devices", {slot: "type the code the device shows or says (letters and digits)"},
                              values=fields)
        try:
            device = reg.confirm(code, name, room, request)
        except (LookupError, ValueError) as exc:
            return form_reply(page, "/devices", {slot: registry_error(exc)}, values=fields)
        label = device.name if device is not None else code
        return form_reply(page, "/devices", notice=f"Let {label} in; it finishes pairing by itself within seconds.",
                          data={"device": as_dict(device) if device is not None else None})

    @app.post("/api/devices/<device_id>")
    def change(device_id):
        reg = need_registry()
        fields = body()
        errors, updates = {}, {}
        for key, what in (("name", "Name"), ("room", "Room")):
            if key in fields:
                updates[key], message = check_text(fields[key], what)
                if message and not (key == "room" and updates[key] == ""):    # an empty room clears it
                    errors[f"{device_id}.{key}"] = message
        extra = set(fields) - {"name", "room"}
        if extra:
            errors[f"{device_id}.name"] = f"unknown field(s): {', '.join(sorted(extra))}"
        if not updates and not errors:
            errors[f"{device_id}.name"] = "nothing to change: send name and/or room"
        if errors:
            return form_reply(page, "/devices", errors, values=fields)
        try:
            if "name" in updates:
                reg.rename(device_id, updates["name"])
            if "room" in updates:
                reg.move(device_id, updates["room"])
        except (LookupError, ValueError) as exc:
            return form_reply(page, "/devices", {f"{device_id}.name": registry_error(exc)}, values=fields)
        return form_reply(page, "/devices", notice="Saved.", data={"device": as_dict(reg.get(device_id))})

    @app.post("/api/devices/<device_id>/revoke")
    def revoke(device_id):
        reg = need_registry()
        try:
            reg.revoke(device_id)
        except (LookupError, ValueError) as exc:
            return form_reply(page, "/devices", {f"{device_id}.revoke": registry_error(exc)})
        return form_reply(page, "/devices", notice="Removed the device; its logins no longer work.")

    def need_access():
        access = getattr(service, "wyoming_access", None)
        if access is None:
            raise bad_request("this Hearth has no list of Wyoming clients", "unavailable", 503)
        return access

    @app.post("/api/wyoming/allow")
    def wyoming_allow():
        access = need_access()
        fields = body()
        try:
            client = access.allow(str(fields.get("address") or ""))
        except (LookupError, ValueError) as exc:
            return form_reply(page, "/devices", {"address": registry_error(exc)}, values=fields)
        return form_reply(page, "/devices", notice=f"Allowed Wyoming clients from {client.address}.",
                          data={"client": client.to_dict()})

    @app.post("/api/wyoming/revoke")
    def wyoming_revoke():
        access = need_access()
        fields = body()
        address = str(fields.get("address") or "")
        try:
            client = access.revoke(address)
        except (LookupError, ValueError) as exc:
            return form_reply(page, "/devices", {f"wyoming.{address[:64]}": registry_error(exc)}, values=fields)
        what = "Revoked; its connections are closed." if client.state == "allowed" else "Dismissed."
        return form_reply(page, "/devices", notice=f"{client.address}: {what}", data={"client": client.to_dict()})

    @app.get("/api/devices/<device_id>/settings")
    def get_settings(device_id):
        reg = need_registry()
        try:
            return as_json({"settings": device_settings(reg, device_id)})
        except (LookupError, ValueError) as exc:
            return bad_request(registry_error(exc), "unknown_device", 404)

    @app.post("/api/devices/<device_id>/settings")
    def post_settings(device_id):
        reg = need_registry()
        fields = body()
        try:
            result = reg.update_settings(device_id, **settings_fields(fields))
        except (LookupError, ValueError, TypeError) as exc:
            return form_reply(page, "/devices", {f"{device_id}.settings": registry_error(exc)}, values=fields)
        return form_reply(page, "/devices", notice="Saved the device's settings.", data={"settings": result})
