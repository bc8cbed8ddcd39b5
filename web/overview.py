"""Overview: is the box healthy? Broker, engines, helpers, queue, CPU, memory, disk, temperature, errors,
and the data partition: free space against the reserve, the registry's last check and snapshot,
and any restore from a snapshot in the last 7 days, with the devices a repair lost until acknowledged.

    GET  /                           the page
    GET  /api/overview               the same facts as JSON
    POST /api/overview/lost/acknowledge  a person has seen the lost devices (CSRF, as every POST)
"""

from __future__ import annotations

import time

import bottle
import psutil

from web.pages import as_json, form_reply, render


def facts(service) -> dict:
    conn = service.conn
    disk = psutil.disk_usage(str(service.settings.data_dir))
    mem = psutil.virtual_memory()
    return {
        "broker": {"connected": bool(conn and conn.connected.is_set()),
                   "port": service.settings.broker.port},
        "stt": {"engine": service.engine.name, "model": str(service.engine.model),
                "language": service.settings.stt.language},
        "tts": {"voice": service.voices.default, "voices": sorted(service.voices.available)},
        "wake": {"engine": service.settings.wake.engine, "model": service.settings.wake.model,
                 "loaded": hasattr(service, "satellites"), **_wake_lag(service)},
        "wake_review": _wake_review(service),
        "queue": {"depth": service.decoder.depth, "sessions_open": len(service.sessions.sessions)},
        "devices": _devices(service),
        "helpers": _helpers(service),
        "system": {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "cpus": psutil.cpu_count(),
            "load": [round(x, 2) for x in psutil.getloadavg()],
            "memory": {"used": mem.total - mem.available, "total": mem.total, "percent": mem.percent},
            "disk": {"used": disk.used, "total": disk.total, "percent": disk.percent},
            "temperature_c": temperature(),
            "uptime_s": round(time.time() - psutil.boot_time()),
        },
        "service": {"uptime_s": round(time.time() - service.started), "version": _version()},
        "storage": {"disk": service.disk.state(), "registry": service.integrity.state()},
        "errors": [{"time": when, "text": text} for when, text in reversed(service.metrics.recent_errors[-10:])],
    }


def temperature() -> float | None:
    """The hottest sensor psutil can read; None where the machine exposes none (VMs, containers)."""
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    readings = [t.current for entries in sensors.values() for t in entries if t.current]
    return round(max(readings), 1) if readings else None


def _devices(service) -> dict | None:
    registry = getattr(service, "devices", None)
    if registry is None:
        return None
    rows = [_row(d) for d in registry.list()]
    return {"total": len(rows), "online": sum(1 for d in rows if d.get("online")),
            "pending": len(registry.pending())}


def _wake_lag(service) -> dict:
    """How far the wake word thread is behind the satellites' audio, now and its peak (10 s)."""
    sats = getattr(service, "satellites", None)
    if sats is None:
        return {"lag_ms": None, "lag_peak_ms": None, "streams": 0}
    worker = sats.worker
    return {"lag_ms": round(worker.overload.lag_s * 1000), "lag_peak_ms": round(worker.overload.peak() * 1000),
            "streams": len(worker.streams)}


def _wake_review(service) -> dict:
    """Per device: wake words that led to no command, commands without one, and what a person marked."""
    review = getattr(service, "wake_review", None)
    return {"on": service.settings.privacy.store_wake_clips, "devices": review.counts() if review else {}}


def _helpers(service) -> list[dict]:
    dispatcher = getattr(service, "helpers", None)
    return dispatcher.roster.list() if dispatcher is not None else []


def _row(device) -> dict:
    return device if isinstance(device, dict) else vars(device)


def _version() -> str:
    from appliance.version import VERSION
    return VERSION


def install(app: bottle.Bottle, service) -> None:
    @app.get("/")
    def page(errors=None, values=None):
        return render("overview", title="Overview", f=facts(service))

    @app.get("/api/overview")
    def api():
        return as_json(facts(service))

    @app.post("/api/overview/lost/acknowledge")
    def acknowledge_lost():
        listed = service.integrity.lost.acknowledge()
        return form_reply(page, "/", notice=f"Acknowledged {listed} lost device(s).", data={"acknowledged": listed})
