"""Fetch once, verify, resume after kill -9, quota, dead upstream: against a real local upstream."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from firmware_cache.errors import IntegrityError, QuotaError, UpstreamError
from firmware_support import Upstream, WebServer, image, make_cache, publish_release

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def upstream():
    up = Upstream()
    yield up
    up.close()


def test_twenty_devices_at_once_cause_one_upstream_download(tmp_path, upstream):
    data = image(3 << 20)
    doc = publish_release(upstream, "speaker", "1.0.0", data)
    cache = make_cache(tmp_path, upstream.url)
    release_gate = threading.Event()
    upstream.hold["/speaker-1.0.0.bin"] = (1 << 20, release_gate)
    # the release is known (manifest read) but its image is not cached yet
    from firmware_cache.manifest import parse
    cache.registry.record_release(parse(upstream.files["/speaker/stable.json"], device_type="speaker",
                                        base_url=upstream.url + "/speaker/stable.json"), "upstream")
    web = WebServer(cache, threads=24)
    try:
        url = f"{web.url}/firmware/{doc['sha256']}.bin"
        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(requests.get, url, timeout=30) for _ in range(20)]
            assert upstream.reached.wait(10)   # the one download is in flight, held mid-body
            release_gate.set()
            bodies = [f.result() for f in futures]
        assert [r.status_code for r in bodies] == [200] * 20
        assert all(hashlib.sha256(r.content).hexdigest() == doc["sha256"] for r in bodies)
        assert upstream.gets["/speaker-1.0.0.bin"] == 1
    finally:
        web.close()
        cache.stop()


def test_check_downloads_verifies_and_makes_current(tmp_path, upstream):
    data = image(1 << 20)
    publish_release(upstream, "speaker", "1.0.0", data)
    cache = make_cache(tmp_path, upstream.url)
    cache.add_type("speaker")
    outcomes = cache.check()
    assert [(o.channel, o.state, o.version) for o in outcomes] == [("stable", "cached", "1.0.0"), ("beta", "none", "")]
    assert cache.registry.current("speaker", "stable").version == "1.0.0"
    assert cache.blobs.path(hashlib.sha256(data).hexdigest()).read_bytes() == data
    cache.check()   # nothing new: no second download
    assert upstream.gets["/speaker-1.0.0.bin"] == 1
    cache.stop()


def test_tampered_image_is_rejected_and_never_served(tmp_path, upstream):
    data = image(1 << 20)
    doc = publish_release(upstream, "speaker", "1.0.0", data)
    upstream.files["/speaker-1.0.0.bin"] = data[:-1] + b"X"    # same size, other bytes
    cache = make_cache(tmp_path, upstream.url)
    cache.add_type("speaker")
    [outcome, _] = cache.check()
    assert outcome.state == "error" and "sha256" in outcome.error and "tampered" in outcome.error
    assert not cache.blobs.has(doc["sha256"]) and not cache.blobs.partial(doc["sha256"]).exists()
    assert cache.registry.current("speaker", "stable") is None
    web = WebServer(cache)
    try:
        r = requests.get(f"{web.url}/firmware/{doc['sha256']}.bin", timeout=10)
        assert r.status_code == 502 and r.json()["error"] == "rejected" and "tampered" in r.json()["message"]
        assert not cache.blobs.has(doc["sha256"])
        assert upstream.gets["/speaker-1.0.0.bin"] == 1      # remembered: the request did not fetch again
    finally:
        web.close()
        cache.stop()


def test_wrong_size_is_refused_before_download(tmp_path, upstream):
    data = image(1 << 20)
    publish_release(upstream, "speaker", "1.0.0", data)
    upstream.files["/speaker-1.0.0.bin"] = data + b"more"
    cache = make_cache(tmp_path, upstream.url)
    cache.add_type("speaker")
    [outcome, _] = cache.check()
    assert outcome.state == "error" and "the manifest says 1048576" in outcome.error
    cache.stop()


def test_dead_upstream_gives_a_clear_error(tmp_path):
    from firmware_support import free_port
    cache = make_cache(tmp_path, f"http://127.0.0.1:{free_port()}")
    cache.add_type("speaker")
    outcomes = cache.check()
    assert all(o.state == "error" and "cannot reach the firmware upstream" in o.error for o in outcomes)
    assert "cannot reach" in cache.registry.channel("speaker", "stable")["error"]
    cache.stop()


def test_upstream_dying_mid_download_keeps_the_partial_for_later(tmp_path, upstream):
    data = image(2 << 20)
    doc = publish_release(upstream, "speaker", "1.0.0", data)
    cache = make_cache(tmp_path, upstream.url)
    from firmware_cache.manifest import parse
    release = parse(upstream.files["/speaker/stable.json"], device_type="speaker", base_url=upstream.url + "/x")
    gate = threading.Event()
    upstream.hold["/speaker-1.0.0.bin"] = (1 << 20, gate)
    upstream.drop = True
    future = cache.fetcher.start(release)
    assert upstream.reached.wait(10)
    upstream.files.clear()        # upstream loses the file: the automatic resume gets a 404
    gate.set()                    # and the first connection is cut mid-body
    with pytest.raises(UpstreamError):
        future.result(20)
    assert cache.blobs.checkpoint(doc["sha256"]).offset > 0
    assert not cache.blobs.has(doc["sha256"])
    cache.stop()


def test_quota_evicts_old_releases_but_keeps_current_and_previous(tmp_path, upstream):
    cache = make_cache(tmp_path, upstream.url, quota_mb=3)
    cache.add_type("speaker")
    shas = []
    for n in range(1, 5):
        shas.append(publish_release(upstream, "speaker", f"1.0.{n}", image(1 << 20, seed=n))["sha256"])
        [outcome, _] = cache.check()
        assert outcome.state == "cached", outcome.error
    # 4 x 1 MiB in a 3 MiB quota: the oldest (1.0.1) went to make room for 1.0.4
    assert [cache.blobs.has(s) for s in shas] == [False, True, True, True]
    channel = cache.registry.channel("speaker", "stable")
    assert (channel["current"], channel["previous"]) == ("1.0.4", "1.0.3")
    # a 2 MiB release cannot fit next to the protected 1.0.3 and 1.0.4
    publish_release(upstream, "speaker", "2.0.0", image(2 << 20, seed=9))
    [outcome, _] = cache.check()
    assert outcome.state == "error" and "raise firmware.quota_mb" in outcome.error
    # 1.0.2 was evicted trying; current 1.0.4 and previous 1.0.3 never are
    assert [cache.blobs.has(s) for s in shas] == [False, False, True, True]
    cache.stop()


def test_full_disk_during_download_is_a_clear_error_and_resumable(tmp_path, upstream):
    """A real EFBIG from the kernel (RLIMIT_FSIZE) stands in for a full disk: same OSError path."""
    data = image(2 << 20)
    publish_release(upstream, "speaker", "1.0.0", data)
    code = (
        "import resource, signal, sys\n"
        "sys.path[:0] = [sys.argv[3], sys.argv[3] + '/tests']\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "from pathlib import Path\n"
        "from firmware_support import make_cache\n"
        "cache = make_cache(Path(sys.argv[1]), sys.argv[2])\n"
        "cache.add_type('speaker')\n"
        "[o, _] = cache.check()\n"
        "print(o.state, o.error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path), upstream.url, str(ROOT)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("error disk full while downloading speaker 1.0.0"), out.stdout
    # space back: the scheduled check waits out the backoff; a person's check resumes from what was kept
    cache = make_cache(tmp_path, upstream.url)
    [outcome, _] = cache.check()
    assert outcome.state == "error" and "the last download failed (disk full" in outcome.error
    [outcome, _] = cache.check(force=True)
    assert outcome.state == "cached"
    assert upstream.ranges and upstream.ranges[-1].startswith("bytes=") and upstream.ranges[-1] != "bytes=0-"
    cache.stop()


KILL_CHILD = """
import sys
sys.path[:0] = [sys.argv[3], sys.argv[3] + "/tests"]
from pathlib import Path
from firmware_cache.manifest import parse
from firmware_support import make_cache
import requests

cache = make_cache(Path(sys.argv[1]), sys.argv[2], checkpoint_bytes=256 << 10)
raw = requests.get(sys.argv[2] + "/speaker/stable.json").content
release = parse(raw, device_type="speaker", base_url=sys.argv[2] + "/speaker/stable.json")
cache.registry.record_release(release, "upstream")
cache.fetcher._on_progress = lambda rel, durable: print("durable", durable, flush=True)
cache.fetcher.fetch(release)
print("finished", flush=True)
"""


def test_kill_9_mid_download_then_restart_resumes_with_range_and_serves_right_bytes(tmp_path, upstream):
    data = image(4 << 20)
    doc = publish_release(upstream, "speaker", "1.0.0", data)
    gate = threading.Event()
    upstream.hold["/speaker-1.0.0.bin"] = (2 << 20, gate)   # the child gets 2 MiB, then upstream stalls
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(tmp_path), upstream.url, str(ROOT)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    durable = 0
    for line in child.stdout:             # the child reports each fsynced checkpoint
        durable = int(line.split()[1])
        if durable >= 1 << 20:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    gate.set()
    partial = tmp_path / "firmware" / "partial" / f"{doc['sha256']}.part"
    assert partial.exists() and 0 < durable <= partial.stat().st_size < len(data)
    kept = json.loads(partial.with_suffix(".json").read_text())["offset"]
    assert kept >= durable

    cache = make_cache(tmp_path, upstream.url)   # the restart
    cache.start()                                # resumes pending downloads
    web = WebServer(cache)
    try:
        r = requests.get(f"{web.url}/firmware/{doc['sha256']}.bin", timeout=30)
        assert r.status_code == 200 and r.content == data
        assert upstream.ranges == [f"bytes={kept}-"]
        assert upstream.gets["/speaker-1.0.0.bin"] == 2
        assert not partial.exists()
    finally:
        web.close()
        cache.stop()
