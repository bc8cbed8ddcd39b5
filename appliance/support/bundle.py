"""The support bundle: one .tar.gz a person can send to a helper.

`build(settings, live)` collects the facts (appliance/support/facts.py), adds what only the
running service knows when `live` is given (health, metrics, the in-memory log, recent errors),
redacts every known secret and anything shaped like one from every member, checks the result
again, writes the archive, and checks the archive once more as written. A secret found at either
check stops the build (SecretInBundle): no bundle rather than a leaking one.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass, field

from appliance.state.config import Settings
from appliance.support import facts
from appliance.support.redact import Secrets, known_secrets

NAME = "hearth-support-%Y%m%d-%H%M%S.tar.gz"


@dataclass(frozen=True)
class Live:
    """What the running service adds (web/support_routes.py fills it in)."""

    health: str                                    # the body of GET /health
    metrics: str                                   # the body of GET /metrics
    overview: dict                                 # the Overview page's facts
    logs: list[dict]                               # the in-memory log (appliance/process/logbuffer.py)
    errors: list[tuple[float, str]]                # metrics' recent errors
    firmware: dict | None = None                   # the firmware cache's status
    extra: dict = field(default_factory=dict)      # more live facts by name


README = """\
Hearth support bundle
=====================

Made {created} by {made_by}.
{service_line}

What is inside (all plain text or JSON):

  bundle.json        when and how this bundle was made, the Hearth version, the data directory
  versions.json      Hearth, Python, the key Python packages, Mosquitto, SQLite, the OS and kernel
  config.toml        the effective configuration (values of secret keys such as metrics_token redacted)
  health.json        GET /health and the watchdog's view (only when the service was running)
  overview.json      broker, engines, queue, devices online, CPU, memory, disk, temperature (service running)
  metrics.txt        GET /metrics, Prometheus text (service running)
  errors.json        the service's recent errors (service running)
  logs/hearth.log    the service's last log lines (from its memory; from its log file or journald when it was not running)
  logs/mosquitto.log the end of the broker's log file, when there is one
  devices.json       paired devices: id, name, room, type, firmware, online, transport, last seen, state
  database.json      the registry: SQLite quick_check, migrations, row counts per table
  broker.json        the broker: port(s), whether they answer, its process, number of logins,
                     persistence file size and header, files moved aside
  disk.json          free space of the data directory's disk, sizes of its main files and folders
  firmware.json      the firmware cache: device types, channels, releases, rollouts, downloads

What is NOT inside: the admin password's hash and salt, device tokens, broker passwords and
their hashes (the password file is counted, never copied), TLS private keys, the metrics token,
stored utterances (neither text nor audio), the database itself. Before this file was written,
every member was searched for every secret Hearth holds; text that matched was replaced by
[REDACTED:...] and the bundle would not have been written had anything remained.
"""


def _json(data) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n"


def _log_lines(rows: list[dict]) -> str:
    return "".join(f"{row['text']}\n" for row in rows)


def members(settings: Settings, live: Live | None, note: str = "") -> dict[str, str]:
    """Every member of the bundle by name, before redaction."""
    created = time.strftime("%Y-%m-%d %H:%M:%S %z")
    made_by = "the running Hearth service" if live else "the 'hearth support bundle' command"
    service_line = ("The service was running: health, metrics, log and recent errors are live."
                    if live else f"No running service answered ({note or 'none found'}): this bundle was "
                                 "built from the data directory alone, without live health, metrics or errors.")
    db = facts.database(settings)
    out = {
        "README.txt": README.format(created=created, made_by=made_by, service_line=service_line),
        "bundle.json": _json({"created": created, "made_by": made_by, "service_running": live is not None,
                              "note": note, "data_dir": str(settings.data_dir)}),
        "versions.json": _json(facts.versions(settings)),
        "config.toml": facts.config_text(settings),
        "devices.json": _json({"devices": db.pop("devices", []),
                               "pairing_codes_waiting": db.pop("pairing_codes_waiting", None)}),
        "firmware.json": _json({"tables": db.pop("firmware", None), "live": live.firmware if live else None}),
        "database.json": _json(db),
        "broker.json": _json(facts.broker(settings)),
        "disk.json": _json(facts.disk(settings)),
    }
    if live:
        out["health.json"] = _json({"health": _maybe_json(live.health), **live.extra})
        out["overview.json"] = _json(live.overview)
        out["metrics.txt"] = live.metrics
        out["errors.json"] = _json([{"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)), "text": text}
                                    for when, text in live.errors])
        out["logs/hearth.log"] = _log_lines(live.logs)
    else:
        out["health.json"] = _json({"health": None, "note": "no running service: no live health"})
        out["logs/hearth.log"] = facts.tail(settings.data_dir / "logs" / "hearth.log") or facts.journal() \
            or "(no running service, no log file and no journald log of hearth.service)\n"
    broker_log = facts.broker_log(settings.data_dir / "broker" / "mosquitto.log")
    if broker_log is not None:
        out["logs/mosquitto.log"] = broker_log
    return out


def _maybe_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def pack(parts: dict[str, str | bytes], secrets: Secrets) -> bytes:
    """Redact, check, write the .tar.gz, then check every member of the archive as written."""
    clean = {}
    for name, data in parts.items():
        raw = data.encode() if isinstance(data, str) else data
        clean[name] = secrets.redact(raw) if _is_text(raw) else raw
        secrets.scan(name, clean[name])
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in clean.items():
            info = tarfile.TarInfo(f"hearth-support/{name}")
            info.size, info.mtime, info.mode = len(data), now, 0o644
            tar.addfile(info, io.BytesIO(data))
    archive = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            secrets.scan(member.name, tar.extractfile(member).read())
    return archive


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def build(settings: Settings, live: Live | None = None, note: str = "") -> bytes:
    return pack(members(settings, live, note), known_secrets(settings))
