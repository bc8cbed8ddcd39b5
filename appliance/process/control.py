"""The local control channel: one writer per resource.

A command that changes state (`hearth firmware check`, ...) must not build its own copy of a room
beside the running service: two writers of one file or table lose the promises each makes alone.
So a command asks the running service, and acts alone only when no service runs.

    <data>/service.lock           flock held by the service for its whole life, and by a command
                                  while it acts alone (no service can start meanwhile)
    <data>/secrets/control.sock   Unix stream socket served by the service; the secrets/ folder is
                                  0700 and the socket 0600, and the peer's uid (SO_PEERCRED) must be
                                  the service's own or root

One JSON line each way:

    {"action": "firmware.check", "params": {"type": "speaker"}}
    {"ok": true, "result": {...}}  |  {"ok": false, "error": "<code>", "message": "..."}

A room offers an action with `service.control.register(name, fn)`; `fn(params) -> JSON-able` runs
on the connection's own thread, and an exception with a `code` attribute becomes that error. A
command calls `call(data_dir, action, params, alone)`: the service's answer when one runs, else
`alone()` under the lock. Why not the web API or MQTT: this needs no port, so nothing on the LAN
can reach it whatever the bind addresses; it works while the broker restarts or the web edge is
busy; and the kernel authenticates the caller.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
REQUEST_WAIT_S = 10.0              # a connection must send its request line within this
Handler = Callable[[dict], object]


class ControlError(RuntimeError):
    """The service refused or failed a request; `code` says which way."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class NoService(ControlError):
    """Nothing listens on the control socket."""

    def __init__(self, message: str):
        super().__init__("no_service", message)


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / "service.lock"


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / "secrets" / "control.sock"


class ServiceLock:
    """The writer's lock on a data directory: the service for its life, or one command acting alone.

    The file is never deleted (deleting a lock file lets two holders lock two inodes); the kernel
    drops the lock when its holder dies, kill -9 included. Its text says who holds it."""

    def __init__(self, data_dir: Path):
        self.path = lock_path(data_dir)
        self._fd: int | None = None

    def try_acquire(self, holder: str) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, holder: str, poll_s: float = 0.2) -> None:
        """Wait for the lock (a command acting alone finishes first), saying once who holds it."""
        told = False
        while not self.try_acquire(holder):
            if not told:
                log.warning("waiting for %s to finish (it holds %s)", self.holder() or "another process", self.path)
                told = True
            time.sleep(poll_s)

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """A socket address for `path` (sun_path holds 107 bytes; reach a deep folder through its fd)."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


class ControlServer:
    """The service's end: actions by name, one thread per connection."""

    def __init__(self, data_dir: Path):
        self.path = socket_path(data_dir)
        self.handlers: dict[str, Handler] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def register(self, action: str, fn: Handler) -> None:
        self.handlers[action] = fn

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        self.path.unlink(missing_ok=True)     # left by a killed service; we hold the lock, so it is ours
        owner = self

        class Connection(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                owner._serve(self.connection, self.rfile, self.wfile)

        server = _Server(str(self.path), Connection, bind_and_activate=False)
        with _address(self.path) as address:
            server.socket.bind(address)
        os.chmod(self.path, 0o600)
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.2,), name="control", daemon=True)
        self._thread.start()
        log.info("control channel on %s", self.path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.path.unlink(missing_ok=True)

    def _serve(self, conn: socket.socket, rfile, wfile) -> None:
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid not in (os.getuid(), 0):
            log.warning("control channel: refused pid %d (uid %d)", pid, uid)
            reply = {"ok": False, "error": "forbidden", "message": "only the service's own user or root may send commands"}
        else:
            conn.settimeout(REQUEST_WAIT_S)
            try:
                line = rfile.readline(MAX_REQUEST + 1)
            except TimeoutError:
                line = b""
            conn.settimeout(None)          # the action itself may take long (a download)
            reply = self._answer(line)
        try:
            wfile.write(json.dumps(reply).encode() + b"\n")
        except OSError as exc:
            log.info("control channel: pid %d left before its answer (%s)", pid, exc)

    def _answer(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            action, params = request["action"], request.get("params") or {}
            if not isinstance(action, str) or not isinstance(params, dict):
                raise TypeError("action must be a string and params an object")
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": "bad_request", "message": f"not a control request ({exc})"}
        fn = self.handlers.get(action)
        if fn is None:
            return {"ok": False, "error": "unknown_action", "message": f"this Hearth has no action '{action}'"}
        try:
            return {"ok": True, "result": fn(params)}
        except Exception as exc:
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                log.exception("control action %s failed", action)
                return {"ok": False, "error": "internal", "message": f"{action} failed inside the service: {exc} (see its log)"}
            return {"ok": False, "error": code, "message": str(exc)}


def ask(data_dir: Path, action: str, params: dict | None = None, timeout_s: float | None = None) -> object:
    """The running service's answer; NoService when none listens, ControlError when it refuses."""
    path = socket_path(data_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        try:
            with _address(path) as address:
                sock.connect(address)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
                raise NoService(f"no Hearth service listens on {path}") from None
            raise ControlError("unreachable", f"cannot reach the running Hearth at {path}: {exc.strerror}") from None
        sock.settimeout(timeout_s)
        sock.sendall(json.dumps({"action": action, "params": params or {}}).encode() + b"\n")
        with sock.makefile("rb") as fh:
            line = fh.readline()
    finally:
        sock.close()
    if not line:
        raise ControlError("service_stopped", "the Hearth service stopped before it answered; see its log and try again")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "failed")), str(reply.get("message", "")))
    return reply.get("result")


def call(data_dir: Path, action: str, params: dict, alone: Callable[[], object], holder: str,
         wait_s: float = 120.0, timeout_s: float | None = None) -> object:
    """Ask the running service; when none runs, `alone()` under the service lock.

    The lock decides, not a guess: if it is free, no service runs (and none can start until
    `alone` returns). If it is held, the holder is a service (starting up, or serving) or another
    command acting alone: keep asking until one answers or the lock comes free, for `wait_s`."""
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        lock = ServiceLock(data_dir)
        try:
            free = lock.try_acquire(holder)
        except PermissionError:
            raise ControlError("forbidden", f"cannot open {lock.path}: run this as the Hearth service's user "
                                            "(or root)") from None
        if free:
            try:
                return alone()
            finally:
                lock.release()
        try:
            return ask(data_dir, action, params, timeout_s)
        except NoService:
            if time.monotonic() > deadline:
                raise ControlError("busy", f"{lock.holder() or 'another process'} holds {lock.path} but does not "
                                           f"answer on {socket_path(data_dir)}; try again when it has finished") from None
            if not told:
                log.warning("waiting for %s", lock.holder() or "the Hearth service to start")
                told = True
            time.sleep(0.2)


def install(service) -> ControlServer:
    """Room hook, installed first by the wiring (appliance/service.py install_rooms): the server is built now, rooms register their actions in their
    install(), and it starts accepting once the service has started."""
    server = ControlServer(service.settings.data_dir)
    service.control = server
    service.after_start.append(server.start)
    service._stoppers.insert(0, server.stop)
    return server
