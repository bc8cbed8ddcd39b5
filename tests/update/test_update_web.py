"""The System page's update card over real HTTP (waitress, admin sign-in, CSRF) against a real
RAUC (tests/update_support.py): the bundle is spooled to the data disk as it arrives, verified,
installed into the inactive slot with progress, then "Reboot now"; bad bundles get their own
code and touch nothing; the edge refuses what is too large, unsigned-in or without CSRF before
the body."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import requests

from conftest import Hearth, make_settings
from update_support import RaucBox, digest, make_bundle, make_key
from web_support import admin_password, sign_in

pytestmark = pytest.mark.own_hearth

MB = 2 ** 20


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    root = tmp_path_factory.mktemp("rauc-web")
    rauc = RaucBox(root).start()
    folder = root / "bundles"
    folder.mkdir()
    cert, key = make_key(root / "keys", "stranger")
    good = make_bundle(folder / "hearth-2.0.0.raucb", "2.0.0", rauc.cert, rauc.key, image_bytes=3 * MB)
    data = good.read_bytes()
    (folder / "truncated.raucb").write_bytes(data[: len(data) // 2])
    rauc.bundles = {
        "good": good,
        "unsigned": make_bundle(folder / "unsigned.raucb", "2.0.1", None, None),
        "stranger": make_bundle(folder / "stranger.raucb", "2.0.2", cert, key),
        "arm": make_bundle(folder / "arm.raucb", "2.0.3", rauc.cert, rauc.key, compatible="hearth-aarch64"),
        "truncated": folder / "truncated.raucb",
    }
    yield rauc
    rauc.stop()


@pytest.fixture(scope="module")
def web(box, tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("update-web") / "data",
                             update={**box.settings(), "max_bundle_mb": 8})
    h = Hearth(settings).start()
    http, _ = sign_in(h.web_url, admin_password(h))
    h.http = http
    yield h
    h.stop()


def incoming(web, settle_s: float = 2.0) -> list[str]:
    """What is left in the upload folder; a refused body's file goes when its request is closed,
    just after the answer, so this waits up to `settle_s` for the folder to empty."""
    folder = web.settings.data_dir / "update" / "incoming"
    deadline = time.monotonic() + settle_s
    while True:
        left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def upload(web, path: Path, **headers) -> requests.Response:
    with path.open("rb") as fh:
        return web.http.post(f"{web.web_url}/api/system/update/upload", data=fh,
                             headers={"Content-Type": "application/octet-stream", "X-File-Name": path.name, **headers})


def raw_post(port: int, head: str, body: bytes = b"") -> tuple[int, dict, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode() + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    top, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in top.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(top.split(b" ")[1]), json.loads(rest), sock


@pytest.mark.parametrize("name, code", [("unsigned", "unsigned"), ("stranger", "unknown_key"),
                                         ("truncated", "truncated"), ("arm", "other_architecture")])
def test_a_bad_upload_is_refused_with_its_code_and_touches_nothing(web, box, name, code):
    before = {k: digest(p) for k, p in box.slots.items()}
    reply = upload(web, box.bundles[name])
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"] == code
    assert {k: digest(p) for k, p in box.slots.items()} == before
    assert incoming(web) == []                          # the refused upload is gone from the data disk
    doc = web.http.get(f"{web.web_url}/api/system/update").json()
    assert doc["last"]["result"] == "failed" and doc["last"]["error"] == code


def test_the_edge_refuses_before_the_body(web, box):
    port = web.service.web.port
    cookie = "; ".join(f"{c.name}={c.value}" for c in web.http.cookies)
    csrf = web.http.headers["X-CSRF-Token"]
    path = "/api/system/update/upload"
    # no sign-in: 401 for a 100 MB body of which not a byte was sent
    status, doc, sock = raw_post(port, f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {100 * MB}\r\n\r\n")
    sock.close()
    assert status == 401 and doc["error"] == "login_required"
    # signed in, over [update] max_bundle_mb (8): 413 before the body
    status, doc, sock = raw_post(port, f"POST {path} HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
                                       f"Content-Length: {9 * MB}\r\n\r\n")
    sock.close()
    assert status == 413 and doc["error"] == "too_large"
    # signed in without the CSRF token: 403, and the spooled body is deleted
    reply = upload(web, box.bundles["good"], **{"X-CSRF-Token": ""})
    assert reply.status_code == 403 and reply.json()["error"] == "csrf"
    assert incoming(web) == []


def test_a_good_upload_is_spooled_to_disk_installed_with_progress_then_reboot(web, box):
    running = digest(box.slots["A"])
    data = box.bundles["good"].read_bytes()
    port = web.service.web.port
    cookie = "; ".join(f"{c.name}={c.value}" for c in web.http.cookies)
    head = (f"POST /api/system/update/upload HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\n"
            f"X-CSRF-Token: {web.http.headers['X-CSRF-Token']}\r\nContent-Type: application/octet-stream\r\n"
            f"X-File-Name: hearth-2.0.0.raucb\r\nContent-Length: {len(data)}\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    half = len(data) // 2
    sock.sendall(head.encode() + data[:half])
    # while the rest is still on its way, the first half is already a file on the data disk
    folder = web.settings.data_dir / "update" / "incoming"
    deadline, spooled = time.monotonic() + 10, 0
    while time.monotonic() < deadline and spooled < half - 64 * 1024:
        spooled = max([p.stat().st_size for p in folder.glob(".upload-*.part")] or [0])
        time.sleep(0.05)
    assert spooled >= half - 64 * 1024, f"only {spooled} of {half} bytes on disk"
    sock.sendall(data[half:])
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply[:300]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = web.http.get(f"{web.web_url}/api/system/update").json()["progress"]
        if progress["state"] in ("installed", "failed"):
            break
        time.sleep(0.1)
    assert progress["state"] == "installed", progress
    assert progress["percent"] == 100 and "2.0.0 written to slot B" in progress["message"]
    assert digest(box.slots["A"]) == running
    doc = web.http.get(f"{web.web_url}/api/system/update").json()
    slots = {s["bootname"]: s for s in doc["slots"]}
    assert slots["B"]["version"] == "2.0.0" and doc["booted"] == "A" and doc["last"]["result"] == "installed"
    assert incoming(web) == []                 # the upload is removed once it is in the slot

    page = web.http.get(f"{web.web_url}/system").text
    assert "2.0.0 written to slot B" in page and 'id="update-reboot" class="restore">' in page  # not hidden
    assert not (box.root / "rebooted").exists()
    settings = web.service.settings
    web.service.settings = settings.with_changes("update", reboot_command="sh -c 'echo Access denied >&2; exit 1'")
    try:
        reply = web.http.post(f"{web.web_url}/api/system/update/reboot", json={})
    finally:
        web.service.settings = settings
    assert reply.status_code == 500 and reply.json()["error"] == "reboot_failed" and "Access denied" in reply.text
    reply = web.http.post(f"{web.web_url}/api/system/update/reboot", json={})
    assert reply.status_code == 202, reply.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (box.root / "rebooted").exists():
        time.sleep(0.05)
    assert (box.root / "rebooted").exists()    # [update] reboot_command ran


def test_outside_the_appliance_the_page_and_the_api_say_updates_need_the_image(hearth, box):
    # the shared `hearth` has no RAUC system config ([update] system_conf: /etc/rauc/system.conf is absent here)
    assert not Path(hearth.settings.update.system_conf).exists()
    http, _ = sign_in(hearth.web_url, admin_password(hearth))
    doc = http.get(f"{hearth.web_url}/api/system/update").json()
    assert doc["available"] is False and doc["reason"].startswith("updates need the appliance image")
    page = http.get(f"{hearth.web_url}/system").text
    assert 'id="update-unavailable"' in page and "updates need the appliance image" in page
    assert 'id="update-upload"' not in page
    with box.bundles["good"].open("rb") as fh:
        reply = http.post(f"{hearth.web_url}/api/system/update/upload", data=fh,
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status_code == 503 and reply.json()["error"] == "not_appliance"
    assert incoming(hearth) == []
