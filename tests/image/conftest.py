"""Fixtures of the image tier (helpers in vmtools.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vmtools import OUT, OVMF_CODE, Disk, built_image


@pytest.fixture(scope="session")
def x86_image() -> Path:
    """The x86-64 disk image; building it also installs QEMU, OVMF and debugfs (image/lib/deps.sh)."""
    image = built_image("x86_64", OUT / "hearth-x86_64.raw", timeout=1500)
    for tool in ("qemu-system-x86_64", "debugfs", "sfdisk"):
        assert shutil.which(tool) or Path("/usr/sbin", tool).exists(), f"{tool} is missing: run ./build.sh image --target x86_64 once as root"
    assert OVMF_CODE.exists(), f"{OVMF_CODE} is missing (Debian package ovmf)"
    return image


@pytest.fixture(scope="module")
def vm_disk(x86_image: Path, tmp_path_factory) -> Disk:
    """A private sparse copy of the image: the boots write to it, the build stays pristine."""
    work = tmp_path_factory.mktemp("vm")
    disk = work / "disk.raw"
    subprocess.run(["cp", "--sparse=always", str(x86_image), str(disk)], check=True)
    return Disk(disk)
