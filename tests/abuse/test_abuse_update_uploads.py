"""Update bundle uploads that go wrong on purpose: a body cut off half way, a body that stalls, a
body bigger than the data disk can hold. Each leaves nothing on the data disk and touches neither
slot, and the next good upload installs (the positive control)."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest

from conftest import Hearth, make_settings
from update_support import RaucBox, make_bundle
from web_support import admin_password, sign_in

pytestmark = [pytest.mark.timeout(120), pytest.mark.own_hearth]
MB = 2 ** 20
PATH = "/api/system/update/upload"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("abuse-update")
    box = RaucBox(root).start()
    h = Hearth(make_settings(root / "data", update=box.settings(), web={"body_timeout_s": 2.0})).start()
    http, csrf = sign_in(h.web_url, admin_password(h))
    bundle = make_bundle(root / "hearth-2.0.0.raucb", "2.0.0", box.cert, box.key, image_bytes=2 * MB)
    yield box, h, http, csrf, bundle
    h.stop()
    box.stop()


def spooled(h) -> list[Path]:
    folder = h.settings.data_dir / "update" / "incoming"
    return list(folder.iterdir()) if folder.exists() else []


def wait_until(ok, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return True
        time.sleep(0.05)
    return ok()


def head(h, http, csrf: str, length: int) -> bytes:
    cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
    return (f"POST {PATH} HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()


def digests(box) -> dict:
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in box.slots.items()}


def test_cut_off_and_stalled_uploads_leave_nothing_and_a_good_one_still_installs(setup):
    box, h, http, csrf, bundle = setup
    data = bundle.read_bytes()
    before = digests(box)
    port = h.service.web.port

    # half the bundle, then the connection drops: the half on disk is deleted
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head(h, http, csrf, len(data)) + data[: len(data) // 2])
    assert wait_until(lambda: sum(p.stat().st_size for p in spooled(h)) > MB // 2, 10)
    sock.close()
    assert wait_until(lambda: not spooled(h), 10), spooled(h)

    # a body that stalls: closed at its deadline (2 s + 1 s per 256 KiB declared), file deleted
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head(h, http, csrf, len(data)) + data[:100_000])
    assert wait_until(lambda: bool(spooled(h)), 5)
    t0 = time.monotonic()
    assert wait_until(lambda: not spooled(h), 30), spooled(h)
    assert time.monotonic() - t0 < 2 + len(data) / (256 * 1024) + 5
    sock.close()

    # a body larger than the data disk has room for (above the low-disk reserve): 507 before the body
    h.service.settings = h.service.settings.with_changes("storage", reserve_mb=10 ** 9)
    try:
        reply = http.post(f"{h.web_url}{PATH}", data=data, headers={"Content-Type": "application/octet-stream"})
        assert reply.status_code == 507 and reply.json()["error"] == "disk_full", reply.text
    finally:
        h.service.settings = h.service.settings.with_changes("storage", reserve_mb=256)
    assert not spooled(h) and digests(box) == before

    # positive control: the same bundle, sent whole, installs into slot B (slot A untouched)
    reply = http.post(f"{h.web_url}{PATH}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 202, reply.text
    assert wait_until(lambda: http.get(f"{h.web_url}/api/system/update").json()["progress"]["state"] == "installed",
                      60)
    after = digests(box)
    assert after["A"] == before["A"] and after["B"] != before["B"]
    assert not spooled(h)
