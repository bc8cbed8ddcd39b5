"""The bottle application: mounts every room's routes on one app."""

from __future__ import annotations

import json
import time

import bottle


def json_error(status: int, code: str, message: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(status=status, body=json.dumps({"error": code, "message": message}),
                               headers={"Content-Type": "application/json"})


def build_app(service) -> bottle.Bottle:
    app = bottle.Bottle()
    app.config["hearth.service"] = service

    @app.get("/health")
    def health():
        conn = service.conn
        bottle.response.content_type = "application/json"
        return json.dumps({
            "ok": bool(conn and conn.connected.is_set()),
            "broker": bool(conn and conn.connected.is_set()),
            "stt": service.engine.name, "tts": service.voices.default,
            "uptime_s": round(time.time() - service.started, 1),
        })

    @app.get("/metrics")
    def metrics():
        bottle.response.content_type = "text/plain; version=0.0.4"
        return service.metrics.render()

    for install in service.web_installers:
        install(app)

    for code in (400, 404, 405, 413, 500):
        app.error(code)(lambda err, code=code: _error_body(err, code))
    return app


def _error_body(err: bottle.HTTPError, code: int) -> str:
    bottle.response.content_type = "application/json"
    return json.dumps({"error": bottle.HTTP_CODES.get(code, "error").lower().replace(" ", "_"),
                       "message": str(err.body) if err.body else bottle.HTTP_CODES.get(code, "")})
