"""Faults in the firmware cache: two writers, a rejected image asked for again and again, kill -9.

`hearth firmware ...` runs as a real subprocess (`python -m appliance.commands.cli`), the service is the
shared test Hearth (real Mosquitto, real waitress), upstream is a local counting HTTP server.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from appliance.process.control import ServiceLock, socket_path
from firmware_cache.manifest import parse
from firmware_support import Upstream, image, publish_release
from mqtt import firmware as fw
from mqtt.client import Connection

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def upstream():
    up = Upstream()
    yield up
    up.close()


def command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "appliance.commands.cli", "--data", str(data_dir), "firmware", *args]


def template(up: Upstream) -> str:
    return up.url + "/{type}/{channel}.json"


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def download(url: str) -> tuple[int, str, str]:
    r = requests.get(url, timeout=30)
    return r.status_code, hashlib.sha256(r.content).hexdigest(), r.headers.get("X-Checksum-Sha256", "")


class TypeWatcher:
    """A device of `device_type` subscribed to its type's retained firmware announce."""

    def __init__(self, hearth, name: str, device_type: str):
        self.seen: queue.Queue[tuple[float, dict]] = queue.Queue()
        creds = hearth.credentials(name, device_type=device_type)
        self.conn = Connection(creds, self._got, [fw.type_firmware(device_type)]).start()

    def _got(self, topic: str, payload: bytes) -> None:
        if payload:
            self.seen.put((time.monotonic(), json.loads(payload)))

    def wait_for(self, version: str, deadline: float) -> tuple[float, dict]:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no announce of {version} in time"
            at, msg = self.seen.get(timeout=left)
            if msg["version"] == version:
                return at, msg

    def close(self) -> None:
        self.conn.stop()


def no_partials(data_dir: Path, sha: str) -> bool:
    return not list((data_dir / "firmware" / "partial").glob(f"{sha}*"))


def test_command_and_service_fetching_one_image_share_one_download_and_announce(hearth, upstream):
    dtype, cache, data_dir = "faults-shared", hearth.service.firmware, hearth.settings.data_dir
    data = image(3 << 20, seed=21)
    doc = publish_release(upstream, dtype, "1.0.0", data)
    gate = threading.Event()
    upstream.hold[f"/{dtype}-1.0.0.bin"] = (1 << 20, gate)
    cache.add_type(dtype, manifest_url=template(upstream))
    watcher = TypeWatcher(hearth, "faults-shared-dev", dtype)
    url = f"{hearth.web_url}/firmware/{doc['sha256']}.bin"
    try:
        with ThreadPoolExecutor(8) as pool:
            service_check = pool.submit(cache.check, dtype)         # the service's own (scheduled) check
            assert upstream.reached.wait(10)                        # its download is in flight, held
            cmd = subprocess.Popen(command(data_dir, "check", dtype), env=ENV, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # the command's check reached the service: the manifest was read a second time
            wait_until(lambda: upstream.gets.get(f"/{dtype}/stable.json", 0) >= 2, 20, "the command's check")
            during = [pool.submit(download, url) for _ in range(4)]  # devices downloading meanwhile
            time.sleep(0.3)
            gate.set()
            out, err = cmd.communicate(timeout=60)
            finished = time.monotonic()
            assert cmd.returncode == 0, err
            assert f"{dtype} stable: 1.0.0 cached and verified" in out
            assert [(o.state, o.version) for o in service_check.result(30)][0] == ("cached", "1.0.0")
            served = [f.result(30) for f in during] + [download(url)]
        assert upstream.gets[f"/{dtype}-1.0.0.bin"] == 1                    # one upstream transfer
        assert all(status in (200, 503) for status, _, _ in served), served  # never a 500
        ok = [s for s in served if s[0] == 200]
        assert ok and all(sha == header == doc["sha256"] for _, sha, header in ok)   # every byte verifies
        assert no_partials(data_dir, doc["sha256"])
        at, msg = watcher.wait_for("1.0.0", finished + 2)
        assert msg["sha256"] == doc["sha256"]

        # a release only the command fetches (through the service) is announced within 2 s
        doc2 = publish_release(upstream, dtype, "1.1.0", image(1 << 20, seed=22))
        done = subprocess.run(command(data_dir, "check", dtype), env=ENV, capture_output=True, text=True, timeout=60)
        finished = time.monotonic()
        assert done.returncode == 0 and "1.1.0 cached and verified" in done.stdout, done.stderr
        at, msg = watcher.wait_for("1.1.0", finished + 2)
        assert msg["sha256"] == doc2["sha256"] and upstream.gets[f"/{dtype}-1.1.0.bin"] == 1
    finally:
        gate.set()
        watcher.close()


def test_with_no_service_the_command_acts_alone_under_the_lock(tmp_path, upstream):
    data_dir = tmp_path / "data"
    data = image(2 << 20, seed=31)
    doc = publish_release(upstream, "faults-alone", "2.0", data)
    gate = threading.Event()
    upstream.hold["/faults-alone-2.0.bin"] = (1 << 20, gate)
    cmd = subprocess.Popen(command(data_dir, "check", "faults-alone", "--url", template(upstream)), env=ENV,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert upstream.reached.wait(20)
        lock = ServiceLock(data_dir)
        assert not lock.try_acquire("the test")                  # held by the command while it writes
        assert "hearth firmware check" in lock.holder()
        assert not socket_path(data_dir).exists()               # no service to ask
        gate.set()
        out, err = cmd.communicate(timeout=60)
    finally:
        gate.set()
        if cmd.poll() is None:
            cmd.kill()
            cmd.communicate()
    assert cmd.returncode == 0 and "faults-alone stable: 2.0 cached and verified" in out, err
    obj = data_dir / "firmware" / "objects" / doc["sha256"][:2] / doc["sha256"]
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == doc["sha256"]
    assert upstream.gets["/faults-alone-2.0.bin"] == 1 and no_partials(data_dir, doc["sha256"])
    assert lock.try_acquire("the test")                          # free again once it finished
    lock.release()


def test_a_rejected_release_requested_20_times_is_fetched_once(hearth, upstream):
    cache, data_dir = hearth.service.firmware, hearth.settings.data_dir
    bad = publish_release(upstream, "faults-bad", "1.0", image(1 << 20, seed=41))
    upstream.files["/faults-bad-1.0.bin"] = image(1 << 20, seed=42)          # same size, other bytes
    done = subprocess.run(command(data_dir, "check", "faults-bad", "--url", template(upstream)), env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "tampered" in done.stderr
    assert upstream.gets["/faults-bad-1.0.bin"] == 1

    # positive control in the same window: a known, not yet cached release is fetched on request
    good = publish_release(upstream, "faults-good", "1.0", image(1 << 20, seed=43))
    cache.registry.record_release(parse(upstream.files["/faults-good/stable.json"], device_type="faults-good",
                                        base_url=upstream.url + "/faults-good/stable.json"), "upstream")
    answers = []
    for n in range(20):
        r = requests.get(f"{hearth.web_url}/firmware/{bad['sha256']}.bin", timeout=10)
        answers.append((r.status_code, r.json()["error"]))
        if n == 10:
            status, sha, _ = download(f"{hearth.web_url}/firmware/{good['sha256']}.bin")
            assert (status, sha) == (200, good["sha256"]) and upstream.gets["/faults-good-1.0.bin"] == 1
    assert answers == [(502, "rejected")] * 20
    assert upstream.gets["/faults-bad-1.0.bin"] == 1                          # no refetch per request

    # the scheduled check respects the backoff; once it has run out, one retry, and the wait doubles
    [outcome, _] = cache.check("faults-bad")
    assert outcome.state == "error" and "rejected" in outcome.error and upstream.gets["/faults-bad-1.0.bin"] == 1
    with cache.registry.store.transaction() as tx:
        tx.execute("update firmware_releases set retry_at = 0 where device_type = 'faults-bad'")
    [outcome, _] = cache.check("faults-bad")
    assert outcome.state == "error" and upstream.gets["/faults-bad-1.0.bin"] == 2
    row = [r for r in cache.registry.releases() if r["device_type"] == "faults-bad"][0]
    assert row["state"] == "rejected" and row["failures"] == 2
    assert 29 * 60 < row["retry_at"] - time.time() <= 30 * 60
    assert not cache.blobs.has(bad["sha256"]) and no_partials(data_dir, bad["sha256"])


def test_kill_9_of_the_fetching_command_leaves_a_state_the_next_process_resumes(tmp_path, upstream):
    data_dir = tmp_path / "data"
    data = image(12 << 20, seed=51)                 # past the 8 MiB checkpoint the real command uses
    doc = publish_release(upstream, "faults-kill", "3.0", data)
    gate = threading.Event()
    upstream.hold["/faults-kill-3.0.bin"] = (10 << 20, gate)
    meta = data_dir / "firmware" / "partial" / f"{doc['sha256']}.json"
    cmd = subprocess.Popen(command(data_dir, "check", "faults-kill", "--url", template(upstream)), env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: meta.exists() and json.loads(meta.read_text() or "{}").get("offset", 0) >= 8 << 20, 30,
                   "a durable checkpoint")
        cmd.send_signal(signal.SIGKILL)
        assert cmd.wait(10) == -signal.SIGKILL
    finally:
        gate.set()
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait()
    kept = json.loads(meta.read_text())["offset"]
    part = meta.with_suffix(".part")
    assert kept == 8 << 20 and part.stat().st_size >= kept
    lock = ServiceLock(data_dir)
    assert lock.try_acquire("the test")              # the kernel dropped the dead command's locks
    lock.release()

    done = subprocess.run(command(data_dir, "check", "faults-kill"), env=ENV, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "faults-kill stable: 3.0 cached and verified" in done.stdout, done.stderr
    assert upstream.ranges == [f"bytes={kept}-"] and upstream.gets["/faults-kill-3.0.bin"] == 2
    obj = data_dir / "firmware" / "objects" / doc["sha256"][:2] / doc["sha256"]
    assert obj.read_bytes() == data and no_partials(data_dir, doc["sha256"])


TWO_WRITERS = """
import logging, sys
sys.path[:0] = [sys.argv[3], sys.argv[3] + "/tests"]
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from pathlib import Path
import requests
from firmware_cache.manifest import parse
from firmware_support import make_cache

cache = make_cache(Path(sys.argv[1]), sys.argv[2])
raw = requests.get(sys.argv[2] + "/faults-two/stable.json").content
release = parse(raw, device_type="faults-two", base_url=sys.argv[2] + "/faults-two/stable.json")
cache.registry.record_release(release, "upstream")
print("verified", cache.fetcher.fetch(release, timeout=60), flush=True)
cache.stop()
"""


@pytest.mark.timing
def test_two_processes_fetching_one_image_share_one_download(tmp_path, upstream):
    """Below the service lock too (two copies of the cache, e.g. an old command): the partial file's
    lock makes the second process wait and reuse the first one's verified object."""
    data = image(2 << 20, seed=61)
    doc = publish_release(upstream, "faults-two", "1.0", data)
    gate = threading.Event()
    upstream.hold["/faults-two-1.0.bin"] = (1 << 20, gate)
    args = [str(tmp_path), upstream.url, str(ROOT)]
    first = subprocess.Popen([sys.executable, "-c", TWO_WRITERS, *args], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = None
    try:
        assert upstream.reached.wait(20)
        second = subprocess.Popen([sys.executable, "-c", TWO_WRITERS, *args], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in second.stderr], daemon=True).start()
        deadline = time.monotonic() + 20
        while "waiting for another process downloading" not in lines.get(timeout=max(0.1, deadline - time.monotonic())):
            assert time.monotonic() < deadline
        gate.set()
        outs = [first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]]
    finally:
        gate.set()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert first.returncode == 0 and second.returncode == 0
    assert all(out.startswith("verified ") for out in outs)
    assert upstream.gets["/faults-two-1.0.bin"] == 1
    obj = Path(outs[1].split()[1])
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == doc["sha256"]
    assert no_partials(tmp_path, doc["sha256"])
