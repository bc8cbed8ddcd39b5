"""Helpers for the abuse tests: a Hearth of their own in a subprocess (clean memory and file
numbers for the process that runs the service), raw sockets from chosen loopback addresses,
and a watcher for large files the service process holds open or writes."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from conftest import free_port
from web_support import loopback_config

ROOT = Path(__file__).resolve().parent.parent.parent


class HearthProcess:
    """`hearth run` as a subprocess on loopback; `.password` is the first-start admin password."""

    def __init__(self, data: Path):
        self.data = data
        self.web_port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        (data / "hearth.toml").write_text(loopback_config(self.web_port))
        self.tmp = data.parent / "tmp"          # its own temp folder: what it spools is all that lands there
        self.tmp.mkdir(exist_ok=True)
        env = {**os.environ, "HEARTH_DATA": str(data), "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.tmp)}
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.commands.cli", "run"], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._lines.put(line) for line in self.proc.stdout], daemon=True).start()
        seen = self.until("Hearth is running")
        self.password = next(line.rsplit(": ", 1)[1] for line in seen if "web admin password" in line)
        self.process = psutil.Process(self.proc.pid)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def until(self, pattern: str, timeout: float = 90) -> list[str]:
        seen, deadline = [], time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line.rstrip())
            if re.search(pattern, line):
                return seen
        raise AssertionError(f"hearth run: no line matching {pattern!r}; saw {seen[-20:]}")

    def rss(self) -> int:
        return self.process.memory_info().rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class BigFiles:
    """Samples, every `interval_s`, the largest regular file that `pid` holds open or that lies in
    the watched folders (files that existed before `start()` are left out)."""

    def __init__(self, pid: int, folders: list[Path], interval_s: float = 0.02):
        self.pid, self.folders, self.interval_s = pid, folders, interval_s
        self.largest: dict[str, int] = {}
        self._stop = threading.Event()
        self._before: set[str] = set()

    def _files(self):
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in list(fd_dir.iterdir()) if fd_dir.exists() else []:
            try:
                target = os.readlink(fd)
                st = os.stat(fd)
            except OSError:
                continue
            if target.startswith("/") and os.path.isfile(fd):
                yield f"fd:{target}", st.st_size
        for folder in self.folders:
            for root, _, names in os.walk(folder):      # os.walk skips folders that vanish meanwhile
                for name in names:
                    path = os.path.join(root, name)
                    try:
                        if os.path.isfile(path):
                            yield path, os.stat(path).st_size
                    except OSError:
                        continue

    def __enter__(self) -> "BigFiles":
        self._before = {name for name, _ in self._files()}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for name, size in self._files():
                if name not in self._before and size > self.largest.get(name, 0):
                    self.largest[name] = size

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def over(self, limit: int) -> dict[str, int]:
        return {name: size for name, size in self.largest.items() if size > limit}


def temp_folders(h: HearthProcess) -> list[Path]:
    return [h.tmp, h.data]


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one HTTP response with a Content-Length (0 when the connection just closed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return 0, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ength:" in head.lower() else 0
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except (ConnectionResetError, socket.timeout):
        if b"\r\n\r\n" not in data:
            return 0, data
        head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
