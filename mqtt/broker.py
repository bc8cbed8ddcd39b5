"""The broker side: Mosquitto's config, password file and ACL, and the managed broker process.

Devices never connect anonymously. Each account is a broker user; the ACL confines every user
to `hearth/<user>/#` by a `pattern` line (`%u` is the authenticated user name, never the client
id), plus read-only broadcast topics. Hearth's service account may use every topic.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mqtt import broker_log, persistence

SERVICE_USER = "hearth"
READER_USER = "hearth-reports"      # the service's second connection: reads devices' reports, publishes nothing


class BrokerError(RuntimeError):
    """The broker could not be configured or started."""


@dataclass(frozen=True)
class Account:
    """A broker login. `kind` is service | reader | device | helper | client | hermes."""

    username: str
    password_hash: str               # Mosquitto's $7$ PBKDF2-SHA512 form
    kind: str = "device"
    device_type: str = ""            # devices also read hearth/type/<device_type>/#
    extra_read: tuple[str, ...] = field(default_factory=tuple)
    extra_readwrite: tuple[str, ...] = field(default_factory=tuple)
    deny: tuple[str, ...] = field(default_factory=tuple)     # checked before the patterns: e.g. a helper's stt/tts
    label: str = ""                  # a device's name, kept as a comment in the ACL (appliance/state/lost.py reads it)


def hash_password(password: str, iterations: int = 101) -> str:
    """Mosquitto 2.x password-file hash ($7$: PBKDF2-HMAC-SHA512, as mosquitto_passwd writes)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class BrokerConfig:
    """Where the managed broker keeps its files and how it listens."""

    directory: Path
    bind: str = "127.0.0.1"
    port: int = 1883
    tls_port: int = 0
    tls_files: tuple[str, str, str] | None = None  # (cafile, certfile, keyfile)
    max_packet_bytes: int = 1 << 20
    max_connections: int = 4000      # per listener, lowered to fit the open-file limit (connections_cap)
    user: str = ""                   # Mosquitto drops root to this user; empty: the current user
    # every listener replaces a client's id by its login name, so no login can take over another's
    # connection; off only for Hermes, whose satellites open several connections with one login
    username_client_ids: bool = True

    @property
    def conf(self) -> Path: return self.directory / "mosquitto.conf"
    @property
    def passwd(self) -> Path: return self.directory / "passwd"
    @property
    def acl(self) -> Path: return self.directory / "acl"
    @property
    def persistence(self) -> Path: return self.directory / "db"
    @property
    def log(self) -> Path: return self.directory / "mosquitto.log"     # size-capped (broker_log.py)
    @property
    def transports(self) -> Path: return self.directory / "transports.json"
    @property
    def pid_file(self) -> Path: return self.directory / "mosquitto.pid"

    def render(self) -> str:
        lines = [
            "# Written by Hearth (mqtt/broker.py); changes are overwritten.",
            "per_listener_settings false",
            f"user {self.user or getpass.getuser()}",
            "allow_anonymous false",
            f"password_file {self.passwd}",
            f"acl_file {self.acl}",
            "persistence true",
            f"persistence_location {self.persistence}/",
            "autosave_interval 60",
            # stderr (unbuffered) is a pipe Hearth reads (mqtt/broker_log.py): connection lines are
            # parsed in memory and never reach a disk; the rest goes to a capped file or the journal
            "log_dest stderr",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"pid_file {self.pid_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "set_tcp_nodelay true",          # small replies must not wait for Nagle + delayed ACK
            f"max_packet_size {self.max_packet_bytes}",
            *self._listener(self.port),
        ]
        if self.tls_port and self.tls_files:
            cafile, certfile, keyfile = self.tls_files
            lines += [*self._listener(self.tls_port), f"cafile {cafile}", f"certfile {certfile}", f"keyfile {keyfile}"]
        return "\n".join(lines) + "\n"

    def connections_cap(self) -> int:
        """Mosquitto refuses connections past this instead of running out of files (then it can accept
        nobody, a device reconnecting included): the open-file limit here, which its child inherits,
        less 64 for its own files (listeners, persistence, log pipe)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        listeners = 2 if self.tls_port and self.tls_files else 1
        return max(16, min(self.max_connections, (soft - 64) // listeners))

    def _listener(self, port: int) -> list[str]:
        lines = [f"listener {port} {self.bind}", f"max_connections {self.connections_cap()}"]
        if self.username_client_ids:
            lines.append("use_username_as_clientid true")
        return lines


def render_acl(accounts: list[Account]) -> str:
    lines = ["# Written by Hearth (mqtt/broker.py) from the device registry; changes are overwritten.", ""]
    for acc in sorted(accounts, key=lambda a: a.username):
        if acc.label:              # a second record of the name, for a registry that is lost (appliance/state/lost.py)
            lines.append("# device: " + " ".join(acc.label.split()))
        lines.append(f"user {acc.username}")
        if acc.kind == "service":
            lines.append("topic readwrite #")
        elif acc.kind == "reader":
            lines.append("topic read #")
        if acc.device_type:
            lines.append(f"topic read hearth/type/{acc.device_type}/#")
        lines += [f"topic read {t}" for t in acc.extra_read]
        lines += [f"topic readwrite {t}" for t in acc.extra_readwrite]
        lines += [f"topic deny {t}" for t in acc.deny]
        lines.append("")
    lines += [
        "# Every user: its own topics, read-only broadcasts. %u is the authenticated user name.",
        "pattern readwrite hearth/%u/#",
        "pattern read hearth/server/#",
        "pattern read hearth/broadcast/#",
        "",
    ]
    return "\n".join(lines)


def render_passwd(accounts: list[Account]) -> str:
    return "".join(f"{a.username}:{a.password_hash}\n" for a in sorted(accounts, key=lambda a: a.username))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())       # on disk before it replaces the old file: power cuts happen
    os.replace(tmp, path)


def write_files(config: BrokerConfig, accounts: list[Account]) -> None:
    config.directory.mkdir(parents=True, exist_ok=True)
    config.persistence.mkdir(parents=True, exist_ok=True)
    _write_private(config.passwd, render_passwd(accounts))
    _write_private(config.acl, render_acl(accounts))
    _write_private(config.conf, config.render())


def usage(config: BrokerConfig) -> dict:
    """What the broker holds: its memory (resident, from its pid file) and its persistence file on
    disk; None where not known (not running, another user's process). Retained messages live in both."""
    import psutil
    try:
        memory = psutil.Process(int(config.pid_file.read_text().split()[0])).memory_info().rss
    except (OSError, ValueError, IndexError, psutil.Error):
        memory = None
    try:
        db = (config.persistence / "mosquitto.db").stat().st_size
    except OSError:
        db = 0
    return {"memory_bytes": memory, "db_bytes": db}


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ManagedBroker:
    """A Mosquitto child process with Hearth's generated config; its log is read through a pipe."""

    def __init__(self, config: BrokerConfig, executable: str = "mosquitto", preexec=None,
                 sink: broker_log.Sink | None = None):
        self.config = config
        self.executable = executable
        self.preexec = preexec
        self.process: subprocess.Popen | None = None
        self._pump: threading.Thread | None = None
        self._conf_started = ""                       # mosquitto.conf as the running broker read it
        self.lines = broker_log.BrokerLines(config.transports, sink or broker_log.file_sink(config.log))

    def _resolved(self) -> str:
        # Debian installs it in /usr/sbin, which a non-root PATH may lack
        return shutil.which(self.executable) or shutil.which(self.executable, path="/usr/sbin:/usr/local/sbin") \
            or self.executable

    def start(self, timeout: float = 10.0) -> None:
        executable = self._resolved()
        if shutil.which(executable) is None:
            raise BrokerError(f"'{self.executable}' not found: install Debian's mosquitto package")
        host = "127.0.0.1" if self.config.bind in ("0.0.0.0", "") else self.config.bind
        if port_open(host, self.config.port):
            raise BrokerError(f"port {self.config.port} is already in use; stop what holds it or set broker.port")
        persistence.rescue(self.config.persistence / "mosquitto.db", executable, self.config.user)
        self._conf_started = self._conf_text()
        self.process = subprocess.Popen(
            [executable, "-c", str(self.config.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
            # its own process group: a terminal's Ctrl-C reaches Hearth, which stops the broker itself,
            # after the service said goodbye on it (PR_SET_PDEATHSIG still ends it if Hearth dies)
            start_new_session=True,
            # Debian's mosquitto speaks sd_notify itself: our child must not claim to be the service
            env={k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")},
        )
        self._pump = broker_log.pump(self.process.stdout, self.lines)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._pump.join(timeout=2)
                said = " / ".join(ln.split(": ", 1)[-1] for ln in list(self.lines.recent)[-3:])
                code = self.process.returncode
                self.process = None
                raise BrokerError(f"mosquitto exited with {code}: {said or 'no message'}")
            if port_open(host, self.config.port):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not open port {self.config.port} within {timeout:.0f} s")

    def _conf_text(self) -> str:
        try:
            return self.config.conf.read_text()
        except FileNotFoundError:
            return ""

    def conf_changed(self) -> bool:
        """mosquitto.conf differs from what the running broker read (listener options need a restart)."""
        return self.running() and self._conf_text() != self._conf_started

    def reload(self) -> None:
        """Re-read the password file and ACL (SIGHUP)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 5.0) -> None:
        if not self.process:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pump:
            self._pump.join(timeout=2)
        self.process = None
