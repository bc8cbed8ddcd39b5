"""Real parts for the firmware tests: an upstream HTTP server that counts requests and serves
Range, Hearth's routes behind waitress, signed manifests, a Mosquitto on a free port."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bottle
import waitress
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.state.config import FirmwareSettings
from appliance.state.store import Store
from firmware_cache import manifest
from firmware_cache.fetch import FetchOptions
from firmware_cache.service import FirmwareCache
from web import firmware_routes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB, varied
    return (block * (size // len(block) + 1))[:size]


@dataclass
class Upstream:
    """A local firmware upstream: path -> bytes. Counts GETs, records Range headers.

    `hold[path] = (offset, event)`: stop after `offset` body bytes until `event` is set
    (used to have a download in flight while a test kills or queries it)."""

    files: dict[str, bytes] = field(default_factory=dict)
    gets: dict[str, int] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)
    hold: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)
    reached: threading.Event = field(default_factory=threading.Event)
    drop: bool = False            # after a hold: cut the connection instead of sending the rest

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        for _, event in self.hold.values():
            event.set()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        with self.lock:
            self.gets[path] = self.gets.get(path, 0) + 1
            if h.headers.get("Range"):
                self.ranges.append(h.headers["Range"])
        body = self.files.get(path)
        if body is None:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        start, status = 0, 200
        rng = h.headers.get("Range")
        if rng and (h.headers.get("If-Range") in (None, etag)):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        h.send_response(status)
        h.send_header("Content-Length", str(len(body) - start))
        h.send_header("ETag", etag)
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        hold = self.hold.get(path)
        try:
            if hold and start < hold[0]:
                h.wfile.write(body[start:hold[0]])
                h.wfile.flush()
                self.reached.set()
                hold[1].wait(30)
                if self.drop:
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                start = hold[0]
            h.wfile.write(body[start:])
        except (BrokenPipeError, ConnectionResetError):
            pass


def release_doc(device_type: str, version: str, data: bytes, url: str, channel: str = "stable", **extra) -> dict:
    return {"device_type": device_type, "channel": channel, "version": version, "url": url, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "notes": f"release {version}", **extra}


def publish_release(up: Upstream, device_type: str, version: str, data: bytes, channel: str = "stable",
                    key: Ed25519PrivateKey | None = None) -> dict:
    """Put an image and its (optionally signed) manifest on the upstream."""
    name = f"/{device_type}-{version}.bin"
    up.files[name] = data
    doc = release_doc(device_type, version, data, name, channel)   # relative to the manifest URL
    if key is not None:
        doc = manifest.sign(doc, key)
    up.files[f"/{device_type}/{channel}.json"] = json.dumps(doc).encode()
    return doc


def make_cache(tmp: Path, upstream_url: str = "", publish=None, quota_mb: int = 64, public_key: str = "",
               checkpoint_bytes: int = 256 << 10, **settings) -> FirmwareCache:
    fs = FirmwareSettings(
        quota_mb=quota_mb, check_interval_min=0, public_key=public_key,
        manifest_url=f"{upstream_url}/{{type}}/{{channel}}.json" if upstream_url else "", fetch_timeout_s=5,
        **settings,
    )
    store = Store(tmp / "hearth.db")
    return FirmwareCache(fs, tmp, store, publish, FetchOptions(timeout_s=5, checkpoint_bytes=checkpoint_bytes))


class WebServer:
    """Hearth's firmware routes behind a real waitress on a free loopback port."""

    def __init__(self, cache: FirmwareCache, threads: int = 8):
        self.app = bottle.Bottle()
        firmware_routes.install(self.app, cache)
        self.server = waitress.create_server(self.app, host="127.0.0.1", port=0, threads=threads)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # waitress's own run() has no stop; turn its loop here and close everything in this thread
        while not self._stop.is_set():
            self.server.asyncore.loop(timeout=0.05, map=self.server._map, use_poll=True, count=1)
        for channel in list(self.server._map.values()):
            channel.close()
        self.server.task_dispatcher.shutdown()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}"

    def close(self) -> None:
        self._stop.set()
        self.thread.join(10)


def mosquitto() -> str:
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"
