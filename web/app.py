"""The bottle application: mounts every room's routes on one app.

Order matters: the sign-in guard (web/auth.py) is installed first, so every page and JSON route
added after it, here or by the wiring through `service.web_installers`, needs a signed-in session,
except the device API (/v1/...), firmware downloads (/firmware/...), /health and /metrics.
"""

from __future__ import annotations

import json
import time

import bottle

from mqtt.broker import BrokerConfig, usage
from web import auth, devices_page, overview, pages, privacy_page, system_page, updates_page, voice_page
from web.devices_page import listing
from web.replies import disk_full_replies, json_error, metrics_allowed


def build_app(service) -> bottle.Bottle:
    app = bottle.Bottle()
    app.config["hearth.service"] = service
    _count_requests(app, service)
    _gauges(service)
    auth.install(app, service)
    pages.install(app)
    app.install(disk_full_replies(service.settings.data_dir))

    @app.get("/health")
    def health():
        conn = service.conn
        broker = bool(conn and conn.connected.is_set())
        disk, integrity = service.disk.state(), service.integrity.state()
        stt_fallback = getattr(service.engine, "fallback", "")
        reasons = [r for r in (None if broker else "not connected to the broker", disk["reason"], stt_fallback or None,
                               None if integrity["ok"] else f"registry database {integrity['file']} failed "
                               f"quick_check ({integrity['problem']}): restart Hearth to restore the newest snapshot",
                               integrity["lost"]["text"] and integrity["lost"]["text"] + " (then acknowledge it on the "
                               "Overview or with 'hearth devices lost --acknowledge')")
                   if r]
        bottle.response.content_type = "application/json"
        return json.dumps({
            "ok": not reasons, "reasons": reasons,
            "broker": broker,
            "stt": service.engine.name, "stt_model": str(service.engine.model), "stt_fallback": stt_fallback,
            "tts": service.voices.default,
            "uptime_s": round(time.time() - service.started, 1),
            "disk": {k: disk[k] for k in ("path", "free_bytes", "reserve_bytes", "full", "low")},
            "registry": {"ok": integrity["ok"], "repairs": len(integrity["repairs"]),
                         "lost": [d["label"] for d in integrity["lost"]["devices"]]},
            "broker_usage": broker_usage(service),
        })

    @app.get("/metrics")
    def metrics():
        if not metrics_allowed(bottle.request.environ, service.settings.web.metrics_token):
            return json_error(401, "unauthorized", "/metrics from another host needs 'Authorization: Bearer <token>' "
                                                   "with [web] metrics_token")
        bottle.response.content_type = "text/plain; version=0.0.4"
        return service.metrics.render()

    for module in (overview, devices_page, voice_page, updates_page, privacy_page, system_page):
        module.install(app, service)
    for install in service.web_installers:
        install(app)

    for code in (400, 401, 403, 404, 405, 413, 500):
        app.error(code)(lambda err, code=code: _error_body(err, code))
    return app


def _count_requests(app: bottle.Bottle, service) -> None:
    @app.hook("before_request")
    def started():
        bottle.request.environ["hearth.t0"] = time.perf_counter()

    @app.hook("after_request")
    def finished():
        t0 = bottle.request.environ.get("hearth.t0")
        if t0 is None:
            return
        route = bottle.request.environ.get("bottle.route")
        service.metrics.inc(f'hearth_http_requests_total{{status="{bottle.response.status_code}"}}')
        if route is not None:
            service.metrics.observe_ms("hearth_http_request_seconds", (time.perf_counter() - t0) * 1000)


def _gauges(service) -> None:
    m = service.metrics
    m.gauge("hearth_uptime_seconds", lambda: time.time() - service.started)
    m.gauge("hearth_broker_connected", lambda: bool(service.conn and service.conn.connected.is_set()))
    m.gauge("hearth_disk_free_bytes", lambda: service.disk.free())
    m.gauge("hearth_disk_reserve_bytes", lambda: service.disk.reserve_bytes())
    m.gauge("hearth_disk_low", lambda: service.disk.state()["low"])
    m.gauge("hearth_disk_full", lambda: service.disk.state()["full"])
    m.gauge("hearth_disk_refused_writes", lambda: service.disk.refused)
    m.gauge("hearth_stt_empty_fallback_total", lambda: service.local_decoder.empty_fallbacks)
    m.gauge("hearth_broker_memory_bytes", lambda: broker_usage(service)["memory_bytes"] or 0)
    m.gauge("hearth_broker_db_bytes", lambda: broker_usage(service)["db_bytes"])
    if "hearth_devices_online" not in m.gauges:
        m.gauge("hearth_devices_online", lambda: _online(service))


def broker_usage(service) -> dict:
    """The broker's memory and persistence file (retained messages live in both)."""
    return usage(BrokerConfig(service.settings.data_dir / "broker"))


def _online(service) -> int:
    return sum(1 for d in listing(service)["devices"] if d.get("online"))


def _error_body(err: bottle.HTTPError, code: int) -> str:
    bottle.response.content_type = "application/json"
    return json.dumps({"error": bottle.HTTP_CODES.get(code, "error").lower().replace(" ", "_"),
                       "message": str(err.body) if err.body else bottle.HTTP_CODES.get(code, "")})
