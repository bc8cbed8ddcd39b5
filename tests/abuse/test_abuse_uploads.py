"""Uploads from a LAN attacker: no body is spooled before the sign-in check, and a hostile backup
archive is refused before it is unpacked into memory. Against `hearth run` in a subprocess, so the
files and memory measured are those of the process that runs the service."""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys
import tarfile
import threading
import time
import zlib

import psutil
import pytest
import requests

from abuse_support import BigFiles, HearthProcess, connect, read_response, temp_folders
from web_support import sign_in

# every loop inside is bounded too; the timeout bounds the module's fixtures
pytestmark = [pytest.mark.timeout(180), pytest.mark.own_hearth]

MB = 2 ** 20
HOSTILE_BYTES = 300 * MB


@pytest.fixture(scope="module")
def hearth_process(tmp_path_factory):
    h = HearthProcess(tmp_path_factory.mktemp("abuse-uploads") / "data")
    yield h
    h.stop()


def hostile_post(port: int, path: str, chunked: bool = False, extra: str = "",
                 total: int = HOSTILE_BYTES, deadline_s: float = 20.0) -> tuple[int, dict, int]:
    """POST `total` bytes as fast as the server takes them; (status, JSON body, bytes sent)."""
    sock = connect(port)
    framing = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: hearth\r\nContent-Type: application/octet-stream\r\n"
                 f"{framing}{extra}\r\n".encode())
    piece = b"\0" * (256 * 1024)
    if chunked:
        piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent, pending, deadline = 0, b"", time.monotonic() + deadline_s
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLOUT)
    try:
        while sent < total and time.monotonic() < deadline:
            events = dict(poller.poll(1000)).get(sock.fileno(), 0)
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                break                                  # the answer (or the close) is here
            if events & select.POLLOUT:
                pending = pending or piece
                n = sock.send(pending)
                pending, sent = pending[n:], sent + n
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, body = read_response(sock)
    sock.close()
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        doc = {"raw": body[:200].decode("latin-1")}
    return status, doc, sent


def test_unauthenticated_300_mb_posts_are_refused_before_any_temp_file(hearth_process):
    h = hearth_process
    port = h.web_port
    cases = [
        ("/api/system/restore", False, "", 401, "login_required"),
        ("/api/system/restore", True, "", 401, "login_required"),
        ("/api/system/restore", False, "Expect: 100-continue\r\n", 401, "login_required"),   # no 100 Continue
        ("/devices", False, "", 401, "login_required"),
        ("/api/voice/speak", True, "", 401, "login_required"),
        ("/login", False, "", 413, "too_large"),
        ("/login", True, "", 413, "too_large"),
        ("/v1/stt", False, "", 401, "bad_token"),
        ("/v1/stt", True, "Authorization: Bearer not-a-real-token-but-long-enough\r\n", 401, "bad_token"),
        ("/firmware/" + "0" * 64 + ".bin", False, "", 413, "too_large"),
    ]
    signed_in, _ = sign_in(h.base, h.password)
    with BigFiles(h.proc.pid, temp_folders(h)) as hostile:
        results = []
        for path, chunked, extra, want_status, want_error in cases:
            t0 = time.monotonic()
            status, doc, sent = hostile_post(port, path, chunked, extra)
            results.append((path, chunked, status, doc.get("error"), sent, round(time.monotonic() - t0, 2)))
        time.sleep(0.2)
    # positive control right after: a signed-in upload of 3 MB passes the edge, is spooled by the
    # server (which the same watcher sees), and gets the app's own answer
    with BigFiles(h.proc.pid, temp_folders(h)) as control_files:
        control = _signed_in_slow_upload(signed_in, h.base, 3 * MB)
        time.sleep(0.2)
    print("hostile uploads (path, chunked, status, error, bytes sent, seconds):", *results, sep="\n  ")
    print("files during the hostile uploads:", hostile.largest)
    print("files during the signed-in upload:", control_files.largest)
    assert hostile.over(MB) == {}
    for (path, chunked, status, error, sent, _), case in zip(results, cases):
        assert (status, error) == (case[3], case[4]), (path, chunked, status, error)
        # what was sent fits in the two sockets' kernel buffers: the server stopped reading at once
        assert sent < 32 * MB, f"{path}: {sent} bytes of a refused body went out"
    assert control.status_code == 422 and "not a Hearth backup" in control.json()["errors"]["backup"]
    spooled = control_files.over(MB)
    assert spooled, "the watcher did not see the signed-in upload's spool file (positive control)"
    assert requests.get(h.base + "/health", timeout=5).status_code == 200


def _signed_in_slow_upload(http: requests.Session, base: str, size: int) -> requests.Response:
    boundary = "hearthabuse"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"backup\"; filename=\"big.tar.gz\"\r\n"
            "Content-Type: application/gzip\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        for _ in range(size // MB):
            yield b"x" * MB
            time.sleep(0.15)                            # slow enough for the watcher to see the spool grow
        yield tail

    return http.post(f"{base}/api/system/restore", data=body(), timeout=30,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


# --- hostile backup archives ------------------------------------------------------------------

def _gzip_stream(header: bytes, payload_bytes: int, fill: bytes = b"\0") -> bytes:
    """A gzip'd tar stream: `header`, then `payload_bytes` of `fill`, compressed as it goes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(header)]
    block = fill * MB
    for _ in range(payload_bytes // MB):
        out.append(comp.compress(block))
    out.append(comp.compress(b"\0" * 1024))               # end of archive
    out.append(comp.flush())
    return b"".join(out)


def _member(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _small(name: str, data: bytes) -> bytes:
    return _member(name, len(data)) + data + b"\0" * (-len(data) % 512)


def hostile_archives() -> dict[str, bytes]:
    marker = _small("hearth-backup.json", json.dumps({"format": "hearth-backup", "version": 1}).encode())
    toml = _small("hearth.toml", b"")
    return {
        # a 1 MB gzip bomb: a real 1 GiB hearth.db of zeros
        "bomb_1gib_db": _gzip_stream(marker + toml + _member("hearth.db", 2 ** 30), 2 ** 30),
        # within the limits, 100 MB of zeros as hearth.db: streams to disk, then is refused as no database
        "zeros_100mb_db": _gzip_stream(marker + toml + _member("hearth.db", 100 * MB), 100 * MB),
        # a tiny archive whose member header claims 1 GiB (the bytes are not even there)
        "claims_1gib": _gzip_stream(marker + toml + _member("hearth.db", 2 ** 30), 0),
        # a pax header claiming 200 MB of its own (tarfile would read it whole into memory)
        "pax_200mb": _gzip_stream(_member("././@PaxHeader", 200 * MB, tarfile.XHDTYPE), 200 * MB, b"1"),
        # a GNU long name claiming 100 MB
        "longname_100mb": _gzip_stream(_member("././@LongLink", 100 * MB, tarfile.GNUTYPE_LONGNAME), 100 * MB, b"a"),
        # thousands of tiny members
        "many_members": _gzip_stream(marker + toml + b"".join(_small(f"f{i}", b"x") for i in range(5000)), 0),
    }


class PeakRss:
    def __init__(self, h: HearthProcess):
        self.h, self.peak, self._stop = h, 0, threading.Event()

    def __enter__(self):
        self.base = self.h.rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.h.rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def grew_mb(self) -> float:
        return (self.peak - self.base) / MB


SPIKE = """
import sys, time
mb, hold = int(sys.argv[1]), float(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
block = b"\\1" * (mb << 20)        # every page written: resident at once
time.sleep(hold)
del block                        # a large block goes back to the kernel at once
print("done", flush=True)
sys.stdin.readline()
"""


class Spike:
    """A process that holds `mb` MB for `hold_s` seconds once, when told: what a costly upload does to
    Hearth's RSS, for the positive control of PeakRss (which reads `.rss()`)."""

    def __init__(self, mb: int, hold_s: float):
        self.proc = subprocess.Popen([sys.executable, "-c", SPIKE, str(mb), str(hold_s)], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == "ready"
        self.process = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def once(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        self.proc.communicate("exit\n", timeout=10)


def test_hostile_backups_are_refused_before_they_cost_memory_and_a_good_one_restores(hearth_process):
    h = hearth_process
    http, _ = sign_in(h.base, h.password)
    good = http.get(f"{h.base}/api/system/backup")
    assert good.status_code == 200
    archives = hostile_archives()
    grew, answers = {}, {}
    for name, data in archives.items():
        assert len(data) < 2 * MB, (name, len(data))
        with PeakRss(h) as rss:
            t0 = time.monotonic()
            reply = http.post(f"{h.base}/api/system/restore", files={"backup": ("b.tar.gz", io.BytesIO(data))}, timeout=60)
            took = time.monotonic() - t0
        grew[name] = round(rss.grew_mb, 1)
        answers[name] = (reply.status_code, reply.json().get("errors", {}).get("backup"), round(took, 2))
    # an upload that says it is 1 GiB is refused from its headers (413) by the web edge
    with PeakRss(h) as rss:
        status, doc, sent = hostile_post(h.web_port, "/api/system/restore",
                                         extra=f"Cookie: hearth_session={http.cookies['hearth_session']}\r\n",
                                         total=2 ** 30)
    grew["declared_1gib_upload"], answers["declared_1gib_upload"] = round(rss.grew_mb, 1), (status, doc.get("error"), sent)
    print("RSS growth MB:", grew)
    print("answers:", *answers.items(), sep="\n  ")
    for name in archives:
        status, error, took = answers[name]
        assert status == 422 and error, (name, answers[name])
        assert grew[name] < 50, (name, grew[name])
    assert "1024 MB" in answers["bomb_1gib_db"][1] and "1024 MB" in answers["claims_1gib"][1]
    assert "not an SQLite file" in answers["zeros_100mb_db"][1]
    assert answers["declared_1gib_upload"][:2] == (413, "too_large") and grew["declared_1gib_upload"] < 50
    # positive control of the sampler: 100 MB held for as long as the briefest refused upload took is seen
    spike = Spike(100, min(took for _status, _error, took in (answers[n] for n in archives)))
    try:
        with PeakRss(spike) as rss:
            spike.once()
        assert rss.grew_mb >= 50, rss.grew_mb
    finally:
        spike.close()
    # positive control: a good backup still restores, and nothing of the refused ones was left behind
    with PeakRss(h) as rss:
        ok = http.post(f"{h.base}/api/system/restore", files={"backup": ("good.tar.gz", io.BytesIO(good.content))})
    assert ok.status_code == 200 and ok.json()["restored"] is True, ok.text
    assert not list(h.data.glob("restore-*"))
