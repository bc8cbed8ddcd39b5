"""`hearth update install|status` against a real RAUC (tests/update_support.py): good bundles are
written to the inactive slot only; bad ones are refused with their own message before anything
is written; the status tells which slot booted, versions, and a rollback after a reboot."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from update_support import RaucBox, digest, make_bundle, make_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    root = tmp_path_factory.mktemp("rauc")
    rauc = RaucBox(root).start()
    bundles = root / "bundles"
    bundles.mkdir()
    other_cert, other_key = make_key(root / "keys", "stranger")
    rauc.bundles = {
        "good": make_bundle(bundles / "hearth-2.0.0.raucb", "2.0.0", rauc.cert, rauc.key),
        "v3": make_bundle(bundles / "hearth-3.0.0.raucb", "3.0.0", rauc.cert, rauc.key),
        "unsigned": make_bundle(bundles / "unsigned.raucb", "2.0.1", None, None),
        "stranger": make_bundle(bundles / "stranger.raucb", "2.0.2", other_cert, other_key),
        "arm": make_bundle(bundles / "arm.raucb", "2.0.3", rauc.cert, rauc.key, compatible="hearth-aarch64"),
        "product": make_bundle(bundles / "product.raucb", "2.0.4", rauc.cert, rauc.key, compatible="acme-router"),
        "huge": make_bundle(bundles / "huge.raucb", "2.0.5", rauc.cert, rauc.key, image_bytes=5 << 20),
    }
    good = rauc.bundles["good"].read_bytes()
    truncated = bundles / "truncated.raucb"
    truncated.write_bytes(good[: len(good) * 2 // 3])
    rauc.bundles["truncated"] = truncated
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 0xFF                 # one bit of the image flipped, size unchanged
    (bundles / "tampered.raucb").write_bytes(bytes(tampered))
    rauc.bundles["tampered"] = bundles / "tampered.raucb"
    rauc.bundles["stranger-verity"] = make_bundle(bundles / "stranger-verity.raucb", "2.0.6", other_cert, other_key,
                                                  fmt="verity")
    junk = bundles / "photo.raucb"
    junk.write_bytes(os.urandom(50_000))
    rauc.bundles["junk"] = junk
    yield rauc
    rauc.stop()


def hearth(data: Path, box: RaucBox, *args: str, update: dict | None = None) -> subprocess.CompletedProcess:
    data.mkdir(parents=True, exist_ok=True)
    section = {**box.settings(), **(update or {})}
    (data / "hearth.toml").write_text("[update]\n" + "".join(f'{k} = "{v}"\n' for k, v in section.items()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "appliance.commands.cli", "--data", str(data), "update", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("name, code_words", [
    ("unsigned", "is not signed"),
    ("stranger", "signed by a key this box does not trust"),
    ("stranger-verity", "signed by a key this box does not trust"),
    ("truncated", "is truncated"),
    ("tampered", "its signature does not match its content (tampered or damaged)"),
    ("junk", "is not a RAUC update bundle"),
    ("arm", "is for hearth-aarch64 (another architecture); this box is hearth-x86_64"),
    ("product", "is for 'acme-router', not for this box"),
    ("huge", "this box's disk is too small"),
])
def test_a_bad_bundle_is_refused_before_anything_is_written(box, tmp_path, name, code_words):
    slots_before = {k: digest(p) for k, p in box.slots.items()}
    done = hearth(tmp_path / "data", box, "install", str(box.bundles[name]))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("Error: ") and code_words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert {k: digest(p) for k, p in box.slots.items()} == slots_before     # neither slot was touched
    status = hearth(tmp_path / "data", box, "status", "--json")
    last = json.loads(status.stdout)["last"]
    assert last["result"] == "failed" and code_words in last["message"]


def test_a_good_bundle_goes_to_the_inactive_slot_and_a_reboot_that_falls_back_is_reported(box, tmp_path):
    data = tmp_path / "data"
    running = digest(box.slots["A"])
    done = hearth(data, box, "install", str(box.bundles["good"]))
    assert done.returncode == 0, done.stderr
    assert "2.0.0 written to slot B (rootfs.1); reboot to start it" in done.stdout
    image = box.status()
    slot_b = [s["rootfs.1"] for s in image["slots"] if "rootfs.1" in s][0]
    assert slot_b["slot_status"]["bundle"]["version"] == "2.0.0"
    with box.slots["B"].open("rb") as fh:          # RAUC wrote the image's bytes, checksummed
        written = hashlib.sha256(fh.read(slot_b["slot_status"]["checksum"]["size"])).hexdigest()
    assert written == slot_b["slot_status"]["checksum"]["sha256"]
    assert digest(box.slots["A"]) == running       # the running slot is untouched

    status = hearth(data, box, "status")
    assert status.returncode == 0, status.stderr
    assert "slot A (rootfs.0): version unknown, booted, marked good" in status.stdout
    assert "slot B (rootfs.1): 2.0.0, inactive, boots next" in status.stdout
    assert "2.0.0 written to slot B" in status.stdout

    # the bootloader tries B; Hearth there never becomes healthy; it comes back on A
    box.reboot("B", data)
    doc = json.loads(hearth(data, box, "status", "--json").stdout)
    assert doc["booted"] == "B" and doc["last"]["result"] == "booted"
    box.reboot("A", data)
    status = hearth(data, box, "status")
    # what this tier sees: B booted once, then the box is on A again. How many tries the bootloader
    # gave B is the boot entry's count, which only the image tier (tests/image/test_update.py) has
    assert "last update: 2.0.0 in slot B never became healthy; back on A " in status.stdout, status.stdout
    assert "(rolled_back" in status.stdout, status.stdout
    doc = json.loads(hearth(data, box, "status", "--json").stdout)
    assert doc["booted"] == "A" and doc["last"]["result"] == "rolled_back"


def test_without_rauc_every_command_says_it_needs_the_appliance(box, tmp_path):
    for args in (("status",), ("install", str(box.bundles["good"])), ("confirm", "--timeout", "1")):
        done = hearth(tmp_path / "data", box, *args, update={"rauc": "/nonexistent/rauc"})
        assert done.returncode == 1
        said = done.stdout + done.stderr
        assert "updates need the appliance image (RAUC not installed" in said, said
    done = hearth(tmp_path / "data", box, "status", update={"system_conf": str(tmp_path / "none.conf")})
    assert done.returncode == 1 and "updates need the appliance image (RAUC has no system config" in done.stdout
    # positive control: the same command with RAUC answers
    done = hearth(tmp_path / "data", box, "status")
    assert done.returncode == 0 and "slot A (rootfs.0)" in done.stdout
