"""Updates: per device type, the cached firmware images and versions, which devices run which,
import from a folder or USB stick, and the upstream manifest address.

    GET  /updates              the page
    GET  /api/updates          the firmware cache's status (or {"available": false})
    POST /api/updates/import   {"folder": "/media/usb"}: import every image found there
    POST /api/updates/manifest {"manifest_url": "https://.../{type}/{channel}.json"} (or "" for import only)

The data comes from the firmware cache (`service.firmware`); the page says plainly when there is
no cache in this build or nothing in it yet.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bottle

from appliance.state import live
from firmware_cache.errors import FirmwareError
from web.pages import as_json, body, form_reply, render


def cache(service):
    return getattr(service, "firmware", None)


def overview(service) -> dict:
    fw = cache(service)
    manifest = getattr(service.settings.firmware, "manifest_url", None)
    if fw is None:
        return {"available": False, "types": [], "manifest_url": manifest}
    status = fw.status()
    types = {t["device_type"]: {"device_type": t["device_type"], "manifest_url": t.get("manifest_url", ""),
                                "releases": [], "channels": [], "devices": []} for t in status.get("types", [])}
    for key, field in (("releases", "releases"), ("channels", "channels"), ("devices", "devices")):
        for row in status.get(key, []):
            entry = types.setdefault(row["device_type"], {"device_type": row["device_type"], "manifest_url": "",
                                                          "releases": [], "channels": [], "devices": []})
            entry[field].append(row)
    return {"available": True, "types": sorted(types.values(), key=lambda t: t["device_type"]),
            "used_bytes": status.get("used_bytes", 0), "quota_bytes": status.get("quota_bytes", 0),
            "downloading": status.get("downloading", {}), "manifest_url": manifest}


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("updates", title="Updates", u=overview(service), errors=errors or {},
                      values=values or {})

    @app.get("/updates")
    def updates_page():
        return page()

    @app.get("/api/updates")
    def get_updates():
        return as_json(overview(service))

    @app.post("/api/updates/import")
    def import_folder():
        fields = body()
        folder = str(fields.get("folder") or "").strip()
        fw = cache(service)
        if fw is None:
            return form_reply(page, "/updates", {"folder": "this Hearth has no firmware cache"}, values=fields)
        if not folder or not Path(folder).is_absolute():
            return form_reply(page, "/updates", {"folder": "give the full path of a folder, e.g. /media/usb"}, values=fields)
        if not Path(folder).is_dir():
            return form_reply(page, "/updates", {"folder": f"{folder} is not a folder on this box"}, values=fields)
        try:
            found = fw.import_dir(Path(folder))
        except (FirmwareError, OSError) as exc:
            return form_reply(page, "/updates", {"folder": str(exc)}, values=fields)
        outcomes = [dataclasses.asdict(o) if dataclasses.is_dataclass(o) else o for o in found]
        good = [o for o in outcomes if o.get("state") == "cached"]
        bad = [o for o in outcomes if o.get("state") == "error"]
        if not outcomes:
            return form_reply(page, "/updates", {"folder": f"no firmware images (manifest + image) found in {folder}"},
                              values=fields)
        notice = f"Imported {len(good)} image(s)" + (f"; {len(bad)} rejected: " + "; ".join(o['error'] for o in bad) if bad else ".")
        return form_reply(page, "/updates", notice=notice, data={"outcomes": outcomes})

    @app.post("/api/updates/manifest")
    def set_manifest():
        fields = body()
        url = str(fields.get("manifest_url") or "").strip()
        if url and not url.startswith(("http://", "https://")):
            return form_reply(page, "/updates", {"manifest_url": "must start with http:// or https:// (or be empty)"},
                              values=fields)
        try:
            live.apply(service, "firmware", {"manifest_url": url})
        except live.InvalidSettings as exc:
            return form_reply(page, "/updates", {"manifest_url": "; ".join(exc.errors.values())}, values=fields)
        fw = cache(service)
        if fw is not None and hasattr(fw, "settings"):
            fw.settings = service.settings.firmware
        return form_reply(page, "/updates", notice="Saved the manifest address.")
