"""`hearth setup`, `hearth run` and `hearth serve`: prepare the data directory, supervise the broker,
run the service until SIGINT/SIGTERM, and leave no process behind."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import logging.handlers
import os
import signal
import sys
import threading
from pathlib import Path


from appliance.process import descriptors
from appliance.state.config import Settings, config_path
from appliance.state.integrity import Unrepairable
from appliance.state.recovery import RecoveryService
from appliance.process.broker import broker_config, die_with_parent, lan_address
from appliance.service import Service, recovery_service
from appliance.state.storage import atomic_write
from appliance.state.store import DatabaseDamaged
from appliance.process.systemd import Notifier
from mqtt.broker import BrokerError
from mqtt.supervisor import BrokerSupervisor

log = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    pass




def private(data_dir: Path) -> None:
    """The data directory is Hearth's alone, whatever umask it was started with: the folder 0700 and
    what is in it 0600 (0700 folders), and everything Hearth creates from now on too (umask 077).
    Another local user could otherwise read hearth.db (the helpers' group secret once) in a
    checkout's ./var, or hold a read lock on service.lock and delay Hearth's start at will."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for root, folders, files in os.walk(data_dir):
        for name in folders:
            _chmod(os.path.join(root, name), 0o700)
        for name in files:
            _chmod(os.path.join(root, name), 0o600)


def _chmod(path: str, mode: int) -> None:
    try:
        if not os.path.islink(path) and os.stat(path).st_mode & 0o777 & ~mode:
            os.chmod(path, mode)
    except OSError:                     # vanished meanwhile, or the broker's own (another user's)
        pass


def setup(settings: Settings) -> Service | None:
    """Idempotent first-start work: data directory, default config file, broker logins and files."""
    private(settings.data_dir)
    cfg = config_path(settings.data_dir)
    if not cfg.exists() and not os.environ.get("HEARTH_CONFIG"):
        atomic_write(cfg, _DEFAULT_CONFIG, settings.data_dir)
    return None


_DEFAULT_CONFIG = """\
# Hearth configuration. Every key and its default: docs/config.md.
# Only what differs from the defaults needs to be here.

[broker]
# port = 1883

[web]
# port = 8080
"""


class PidLock:
    """One Hearth per data directory: a second `hearth run` says so instead of fighting the first."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            pid = self.fh.read().strip() or "?"
            self.fh.close()
            raise AlreadyRunning(f"Hearth is already running from {self.path.parent} (pid {pid}); stop it first") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()

    def release(self) -> None:
        # emptied, never deleted: deleting a lock file lets the next two starts lock two different files
        if self.fh:
            self.fh.seek(0)
            self.fh.truncate()
            self.fh.close()
            self.fh = None


def log_to_file(path: Path, max_bytes: int = 1 << 20, backups: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)




M_ARENA_MAX = -8                    # glibc's mallopt parameter


def _few_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); with ~40
    threads (engines, rooms, web) their free pages stay resident. Two arenas: 12-20 MB less resident
    memory measured after a few turns, no slower (the engines allocate little per decode). Called
    before any thread starts."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):      # not glibc (e.g. musl in a container): nothing to tune
        pass


def run(settings: Settings, manage_broker: bool, out=sys.stdout) -> int:
    """Start (broker +) service + web, print where they are, wait for a signal, stop all."""
    _few_malloc_arenas()
    settings = descriptors.fit(settings, descriptors.raise_limit())   # sockets never take Hearth's own files
    systemd = Notifier()
    private(settings.data_dir)
    lock = PidLock(settings.data_dir / "hearth.pid")
    lock.acquire()
    stop = threading.Event()
    broker = None
    service = None

    def on_signal(*_) -> None:
        stop.set()
        if broker is not None:      # systemd signals the whole unit: the broker may exit first, never restart it
            broker.stopping()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        setup(settings)
        try:
            if manage_broker:        # a checkout: a capped log file beside the terminal (the appliance has the journal)
                log_to_file(settings.data_dir / "logs" / "hearth.log")
                broker = BrokerSupervisor(broker_config(settings), settings.broker.mosquitto, preexec=die_with_parent)
                service = Service(settings, reload_broker=broker.reload)
            else:
                service = Service(settings)
        except (Unrepairable, DatabaseDamaged) as damage:     # the page still comes up: restore or reset there
            broker = None
            service = recovery_service(settings, damage)
            return _recovery(service, stop, systemd, out)
        service.restart_requested = threading.Event()     # set by the web page's restart button
        service.accounts.ensure()
        service.sync_broker_files()
        if broker:
            broker.start()
        service.start()
        host = settings.broker.advertise_host or lan_address(settings.broker.bind)
        print(f"broker: mqtt://{host}:{settings.broker.port}", file=out, flush=True)
        web_host = lan_address(settings.web.bind)
        print(f"web: http://{web_host}:{service.web.port}", file=out, flush=True)
        for line in service.startup_notes:
            print(line, file=out, flush=True)
        print("Hearth is running; press Ctrl-C to stop.", file=out, flush=True)
        systemd.ready()
        while not stop.wait(1.0) and not service.restart_requested.is_set():
            systemd.alive(service.healthy())
        return 0
    finally:
        systemd.stopping()
        if service:
            service.stop()
        if broker:
            broker.stop()
        lock.release()
        if service and service.restart_requested.is_set() and not stop.is_set():
            from appliance.process import restart
            restart.reexec()


def _recovery(service: RecoveryService, stop: threading.Event, systemd: Notifier, out) -> int:
    """Recovery mode: only the web page runs, until a restore or reset restarts Hearth (or a signal)."""
    service.start()
    print(f"web: http://{lan_address(service.settings.web.bind)}:{service.web.port}", file=out, flush=True)
    for line in service.startup_notes:
        print(line, file=out, flush=True)
    print(f"RECOVERY MODE: {service.damage}", file=out, flush=True)
    print("Hearth is running in recovery mode (only the web page); press Ctrl-C to stop.", file=out, flush=True)
    systemd.ready()
    while not stop.wait(1.0) and not service.restart_requested.is_set():
        systemd.alive(service.healthy())
    return 0


__all__ = ["run", "setup", "AlreadyRunning", "BrokerError", "lan_address"]
