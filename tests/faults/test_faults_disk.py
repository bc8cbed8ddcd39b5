"""A full data disk: `hearth run` on a small tmpfs (mounted here, as root) filled below the low-disk
reserve and then to 0 bytes free. Writes answer named errors (507 + JSON over HTTP, `low_disk` /
`disk_full` to a device, one `Error:` line on the command line), /health degrades, and once space
returns nothing is corrupt and every acknowledged write is there."""

from __future__ import annotations

import errno
import subprocess
import time
import tomllib

import pytest
import requests

from appliance.commands.client import DeviceLink, say, transcribe
from appliance.state.snapshots import quick_check
from appliance.state.storage import free_bytes
from faults_kit import HEARTH, HearthRun, espeak, pair, sign_in
from firmware_support import Upstream, image, publish_release
from mqtt import topics
from mqtt.messages import Error

pytestmark = pytest.mark.own_hearth

MiB = 2 ** 20
RESERVE_MB = 8


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs: a real filesystem that runs out of space (ENOSPC), no loop device needed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)], check=True, timeout=10)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=10)


def fill(folder, leave: int) -> int:
    """Fill the filesystem until `leave` bytes are free (0: until the kernel says ENOSPC)."""
    block = b"\xa5" * (256 << 10)
    try:
        with open(folder / "filler", "ab") as fh:
            while free_bytes(folder) > leave + len(block):
                fh.write(block)
                fh.flush()
            while leave == 0:
                fh.write(b"\xa5" * 4096)
                fh.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return free_bytes(folder)


def unfill(folder) -> None:
    (folder / "filler").unlink()


def wait_for(check, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def device_error(link: DeviceLink, timeout: float = 10) -> Error:
    deadline = time.monotonic() + timeout
    while True:
        item = link.next(deadline)
        if item.topic == topics.error(link.device):
            return Error.from_payload(item.payload)


def test_a_full_data_disk_gives_named_errors_and_loses_nothing(small_disk, tmp_path):
    up = Upstream()
    publish_release(up, "satellite", "2.0", image(2 * MiB))
    run = HearthRun(small_disk / "var", storage={"reserve_mb": RESERVE_MB},
                    privacy={"store_utterances": True}, firmware={"check_interval_min": 0})
    data = run.data
    words = espeak(tmp_path, "Turn on the kitchen light.")
    run.start()
    try:
        http = sign_in(run.base, run.admin_password)
        creds = pair(run, http, "Kitchen")
        settings_url = f"{run.base}/api/devices/{creds.username}/settings"
        assert http.post(settings_url, json={"location.name": "before"}, timeout=10).status_code == 200
        acked = "before"
        with DeviceLink(creds) as link:
            # with space: the utterance is stored and nothing else arrives
            assert "kitchen" in transcribe(link, words, timeout=30).final.text.lower()
            assert wait_for(lambda: len(list((data / "utterances").glob("*/*.json"))) == 1)

            # below the reserve (but not full): no new utterances, no firmware fetch, /health says why
            left = fill(small_disk, leave=4 * MiB)
            assert MiB < left < RESERVE_MB * MiB
            health = run.health()
            assert health["ok"] is False and health["disk"]["low"] and "data disk low" in health["reasons"][0]
            assert "hearth_disk_low 1" in run.metrics()
            assert "data disk low" in http.get(f"{run.base}/", timeout=10).text
            heard = transcribe(link, words, timeout=30)
            assert "kitchen" in heard.final.text.lower()
            err = device_error(link)
            assert err.code == "low_disk" and err.ref == heard.final.session and str(data) in err.message
            assert len(list((data / "utterances").glob("*/*.json"))) == 1
            fetch = subprocess.run([HEARTH, "firmware", "check", "satellite", "--url",
                                    f"{up.url}/{{type}}/{{channel}}.json"], env=run.env, capture_output=True,
                                   text=True, timeout=60)
            assert fetch.returncode == 1 and "reserve" in fetch.stderr, fetch.stderr
            assert up.gets.get("/satellite-2.0.bin", 0) == 0           # not even started

            # 0 bytes free: named errors everywhere, nothing half-written
            assert fill(small_disk, leave=0) < 64 << 10
            health = run.health()
            assert health["ok"] is False and health["disk"]["full"], health
            assert f"data disk full: {data}" in " ".join(health["reasons"])
            privacy = http.post(f"{run.base}/api/privacy", json={"retention_days": 31}, timeout=10)
            assert privacy.status_code == 507, privacy.text
            body = privacy.json()
            assert body["error"] == "disk_full" and body["message"].startswith(f"data disk full: {data}, ")
            for n in range(6):      # SQLite may still fit a write into its WAL; each answer is 200 or 507
                reply = http.post(settings_url, json={"location.name": f"during-{n}"}, timeout=10)
                if reply.status_code == 200:
                    acked = f"during-{n}"
                else:
                    assert reply.status_code == 507 and reply.json()["error"] == "disk_full", reply.text
            code = requests.get(f"{run.base}/v1/device/code", params={"state": "s1", "type": "satellite"}, timeout=10)
            assert code.status_code in (200, 507), code.text
            if code.status_code == 507:
                assert code.json()["error"] == "disk_full"

            spoken = say(link, "A sentence never cached before, for the full disk.", timeout=30)
            assert len(spoken.pcm) > spoken.rate                      # the reply itself still comes
            err = device_error(link)
            assert err.code == "disk_full" and "not cached" in err.message, err
            heard = transcribe(link, words, timeout=30)
            assert "kitchen" in heard.final.text.lower()
            assert device_error(link).code == "disk_full"

            # space returns: healthy again, nothing corrupt, every acknowledged write present
            unfill(small_disk)
            assert run.health()["ok"] is True
            assert quick_check(data / "hearth.db") is None
            assert http.get(settings_url, timeout=10).json()["settings"]["location"]["name"] == acked
            cfg = tomllib.loads((data / "hearth.toml").read_text())
            assert cfg.get("privacy", {}).get("retention_days", 30) == 30      # the refused save changed nothing
            assert http.post(f"{run.base}/api/privacy", json={"retention_days": 31}, timeout=10).status_code == 200
            assert tomllib.loads((data / "hearth.toml").read_text())["privacy"]["retention_days"] == 31
            assert say(link, "Space is back.", timeout=30).end.chunks > 0
            for snap in (data / "snapshots").glob("*/hearth.db"):
                assert quick_check(snap) is None, snap
            # the phrase cache is written after the reply went out: let that last write finish
            deadline = time.monotonic() + 10
            while (temps := list(data.rglob(".*.tmp*")) + list(data.rglob(".tmp-*"))) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not temps, f"temp files left behind: {temps}"
            for meta in (data / "utterances").glob("*/*.json"):
                assert meta.with_suffix(".wav").exists()
        fetch = subprocess.run([HEARTH, "firmware", "check", "satellite", "--url", f"{up.url}/{{type}}/{{channel}}.json"],
                               env=run.env, capture_output=True, text=True, timeout=60)
        assert fetch.returncode == 0, fetch.stderr                     # the control: with space it fetches
    finally:
        run.stop()
        up.close()

    # starting on a full disk: one Error line that names the data directory
    fill(small_disk, leave=0)
    start = subprocess.run([HEARTH, "run"], env=run.env, capture_output=True, text=True, timeout=60)
    assert start.returncode == 1
    last = start.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: data disk full: {data}, ") and "Errno" not in start.stderr, start.stderr
    assert "Traceback" not in start.stderr
    unfill(small_disk)
    assert quick_check(data / "hearth.db") is None
    assert tomllib.loads((data / "hearth.toml").read_text())["privacy"]["retention_days"] == 31
