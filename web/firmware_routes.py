"""Firmware downloads for devices and the ESPHome manifest, streamed from the verified store.

    GET|HEAD /firmware/<sha256>.bin                  the image; Range (206/416), ETag, If-None-Match,
                                                     If-Range, X-Checksum-Sha256 and Digest headers
    GET      /firmware/<device_type>/manifest.json   ESPHome update manifest (?channel=beta)

Only files under the store's objects/ are ever served, and a file gets there only after its
hash was checked. Bodies go out through the server's wsgi.file_wrapper (waitress sends them from
its I/O loop without holding a worker thread), in chunks, never the whole file in memory.
Device authentication on these routes waits for the pairing work (see docs/firmware.md).
"""

from __future__ import annotations

import base64
import json
import os
import re

import bottle

from firmware_cache.errors import FirmwareError, NotReady, UnknownFirmware

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_READ = 1 << 20   # waitress asks for a socket buffer's worth per send; cap it to bound memory per client


class Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one byte range; None to send the whole file; Unsatisfiable for 416."""
    match = RANGE.match(header.strip().replace(" ", ""))
    if not match:
        return None  # several ranges or bad syntax: RFC 9110 lets us answer 200 with the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    start = int(first)
    if start >= size:
        raise Unsatisfiable()
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None
    return start, end


class Window:
    """A read-only, seekable view of `length` bytes of a file from `start` (for file_wrapper)."""

    def __init__(self, fh, start: int, length: int):
        self._fh, self._start, self._length, self._pos = fh, start, length, 0
        fh.seek(start)

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        n = min(MAX_READ, left if n is None or n < 0 else min(n, left))
        data = self._fh.read(n) if n > 0 else b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        self._fh.seek(self._start + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._fh.close()


def _error(status: int, code: str, message: str, **headers: str) -> bottle.HTTPResponse:
    body = json.dumps({"error": code, "message": message})
    return bottle.HTTPResponse(body=body, status=status, headers={"Content-Type": "application/json", **headers})


def install(app: bottle.Bottle, cache) -> None:
    """Add the firmware routes to the web app; `cache` is a firmware_cache.service.FirmwareCache."""

    @app.route("/firmware/<device_type>/manifest.json")
    def esphome_manifest(device_type: str):
        base = bottle.request.urlparts
        try:
            doc = cache.esphome_manifest(device_type, f"{base.scheme}://{base.netloc}", bottle.request.query.get("channel", "stable"))
        except UnknownFirmware as exc:
            return _error(404, exc.code, str(exc))
        bottle.response.content_type = "application/json"
        bottle.response.set_header("Cache-Control", "no-cache")
        return json.dumps(doc)

    @app.route("/firmware/<name:re:[^/]+\\.bin>", method=["GET", "HEAD"])
    def download(name: str):
        sha = name[: -len(".bin")]
        try:
            path = cache.ensure(sha)
        except UnknownFirmware as exc:
            return _error(404, exc.code, str(exc))
        except NotReady as exc:
            return _error(503, exc.code, str(exc), **{"Retry-After": str(exc.retry_after_s)})
        except FirmwareError as exc:
            return _error(502, exc.code, str(exc))
        fh = open(path, "rb")
        size = os.fstat(fh.fileno()).st_size
        etag = f'"{sha}"'
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "X-Checksum-Sha256": sha,
            "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(sha)).decode(),
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{sha}.bin"',
        }
        req = bottle.request
        if etag in [t.strip() for t in req.get_header("If-None-Match", "").split(",")]:
            fh.close()
            return bottle.HTTPResponse(status=304, headers=headers)
        start, end, status = 0, size - 1, 200
        range_header = req.get_header("Range")
        if_range = req.get_header("If-Range")
        if range_header and (not if_range or if_range.strip() == etag):
            try:
                chosen = parse_range(range_header, size)
            except Unsatisfiable:
                fh.close()
                return _error(416, "range_not_satisfiable",
                              f"the range {range_header!r} is outside the image ({size} bytes)",
                              **{"Content-Range": f"bytes */{size}"})
            if chosen is not None:
                (start, end), status = chosen, 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        for key, value in headers.items():
            bottle.response.set_header(key, value)
        bottle.response.status = status
        return Window(fh, start, end - start + 1)  # bottle hands it to the server's wsgi.file_wrapper
