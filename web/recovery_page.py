"""The web page in recovery mode (appliance/state/recovery.py): sign in, see what is damaged, restore or reset.

    GET  /                     what is damaged and the ways out (signed in)
    GET  /api/recovery         the same as JSON
    POST /api/system/restore   a one-file backup (multipart field "backup"), as on the System page
    POST /api/recovery/reset   {"confirm": "reset"}: start again with an empty registry
    GET  /health               {"ok": false, "mode": "recovery", "reason": ..., "file": ...}
    /v1/...                    503 `recovery` (the device API is off until the registry is back)
"""

from __future__ import annotations

import json
import time

import bottle

from appliance.state import backup
from web import auth, pages
from web.replies import disk_full_replies, json_error, metrics_allowed
from web.pages import VIEWS, as_json, body, form_reply
from web.sessions import current


def state(service) -> dict:
    return {"mode": "recovery", "reason": str(service.damage), "file": str(service.db),
            "problem": service.damage.problem, "snapshots": str(service.settings.data_dir / "snapshots"),
            "damaged_dir": str(service.settings.data_dir / "damaged"),
            "running": ["web page", "admin sign-in", "restore", "reset"],
            "stopped": ["broker (devices cannot log in)", "speech to text", "text to speech", "wake word",
                        "Wyoming", "Hermes", "firmware cache", "device API"]}


def build_app(service) -> bottle.Bottle:
    app = bottle.Bottle()
    app.config["hearth.service"] = service
    auth.install(app, service)
    pages.install(app)
    app.install(disk_full_replies(service.settings.data_dir))

    def page(errors=None, values=None):
        session = current()
        return bottle.template("recovery", template_lookup=[str(VIEWS)], nav=[("/", "Recovery")],
                               path=bottle.request.path, csrf=session.csrf if session else "",
                               signed_in=session is not None, title="Recovery", errors=errors or {},
                               notice=bottle.request.query.getunicode("notice") or "", r=state(service))

    @app.get("/health")
    def health():
        bottle.response.content_type = "application/json"
        return json.dumps({"ok": False, "mode": "recovery", "reasons": [service.reason()],
                           "reason": service.reason(), "file": str(service.db), "broker": False,
                           "uptime_s": round(time.time() - service.started, 1),
                           "disk": {k: v for k, v in service.disk.state().items() if k != "reason"}})

    @app.get("/metrics")
    def metrics():
        if not metrics_allowed(bottle.request.environ, service.settings.web.metrics_token):
            return json_error(401, "unauthorized", "/metrics from another host needs a bearer token")
        bottle.response.content_type = "text/plain; version=0.0.4"
        return service.metrics.render()

    @app.get("/")
    def recovery_page():
        return page()

    @app.get("/api/recovery")
    def get_state():
        return as_json(state(service))

    @app.post("/api/system/restore")
    def restore():
        upload = bottle.request.files.get("backup")
        if upload is None:
            return form_reply(page, "/", {"backup": "choose a backup file (.tar.gz) first"})
        try:
            result = service.restore(upload.file)
        except backup.BackupError as exc:
            return form_reply(page, "/", {"backup": str(exc)})
        return form_reply(page, "/", notice="Restored the backup; Hearth restarts now and the page comes back "
                                            "in a few seconds.", data=result)

    @app.post("/api/recovery/reset")
    def reset():
        if body().get("confirm") != "reset":
            return form_reply(page, "/", {"confirm": "type reset to confirm"})
        return form_reply(page, "/", notice="Reset: Hearth restarts now with an empty registry; devices pair again.",
                          data=service.reset())

    @app.route("/v1/<path:path>", method=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def device_api(path):
        return json_error(503, "recovery", "Hearth is in recovery mode (its registry is damaged); "
                                           "ask the household to restore a backup on the web page")

    for code in (400, 401, 403, 404, 405, 413, 500):
        app.error(code)(lambda err, code=code: json.dumps({"error": bottle.HTTP_CODES.get(code, "error").lower()
                                                           .replace(" ", "_"), "message": str(err.body or "")}))
    return app
