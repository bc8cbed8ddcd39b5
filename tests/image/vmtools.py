"""The image tier: build the appliance once (or reuse a fresh build), boot it under QEMU (TCG +
OVMF) with forwarded loopback ports, and read its data partition from the host without mounting.

A build is fresh when out/hearth-x86_64.raw is newer than every file it is made from (image/,
the service's packages, pyproject.toml); otherwise `./build.sh image --target x86_64` runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out"
SOURCES = ("image", "appliance", "mqtt", "web", "firmware_cache", "pyproject.toml")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
ARTIFACTS = ROOT / "tests" / "artifacts"


def newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


def built_image(target: str, artifact: Path, timeout: int) -> Path:
    """The image for `target`, rebuilt when any source is newer than it."""
    if artifact.exists() and artifact.stat().st_mtime > newest_source():
        return artifact
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / "build.sh"), "image", "--target", target], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"./build.sh image --target {target} failed:\n{proc.stdout[-4000:]}")
    record("build_s_" + target, round(time.monotonic() - started, 1))
    assert artifact.exists(), f"the build said it succeeded but wrote no {artifact}"
    return artifact


def record(key: str, value) -> None:
    """Measured figures for docs/benchmarks-image.md (tests/artifacts/image-figures.json)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "image-figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Disk:
    """The booted copy of the image, and its data partition read with debugfs (no mount)."""

    def __init__(self, path: Path):
        self.path = path
        table = json.loads(subprocess.run(["sfdisk", "--json", str(path)], check=True,
                                          capture_output=True, text=True).stdout)["partitiontable"]
        sector = table.get("sectorsize", 512)
        parts = {p.get("name"): p for p in table["partitions"]}
        assert "hearth-data" in parts, f"no hearth-data partition in {path}: {list(parts)}"
        self.root_offset = parts["hearth-root"]["start"] * sector
        self.data_offset = parts["hearth-data"]["start"] * sector
        self.data_size = parts["hearth-data"]["size"] * sector

    def recover(self) -> str:
        """Replay the data partition's ext4 journal, as the kernel does at the next mount.

        After a power cut the newest metadata may be only in the journal: reading or writing
        the partition without replaying it first would see (or make) an older state, and the
        next boot's replay would overwrite what debugfs wrote. e2fsck cannot replay at an
        offset, so the partition is copied out, checked and copied back."""
        part = self.path.with_suffix(".data.ext4")
        dd = ["dd", "bs=1M", "status=none", "iflag=skip_bytes,count_bytes", "oflag=seek_bytes"]
        subprocess.run(dd[:-1] + [f"if={self.path}", f"of={part}", f"skip={self.data_offset}",
                                  f"count={self.data_size}", "conv=sparse"], check=True)
        fsck = subprocess.run(["e2fsck", "-fy", str(part)], capture_output=True, text=True)
        assert fsck.returncode in (0, 1), f"e2fsck of the data partition failed ({fsck.returncode}):\n{fsck.stdout}{fsck.stderr}"
        subprocess.run(["dd", "bs=1M", "status=none", "oflag=seek_bytes", f"if={part}", f"of={self.path}",
                        f"seek={self.data_offset}", "conv=notrunc"], check=True)
        part.unlink()
        return fsck.stdout

    def _debugfs(self, request: str, write: bool = False) -> str:
        args = ["debugfs"] + (["-w"] if write else []) + ["-R", request, f"{self.path}?offset={self.data_offset}"]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"debugfs {request!r} failed: {proc.stderr}")
        return proc.stdout

    def journal(self, workdir: Path, units=("hearth-setup", "hearth-mosquitto", "hearth")) -> str:
        """The tail of the box's journal for Hearth's units (from the root partition, no mount):
        what a failed boot says about itself."""
        dest = workdir / "journal"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        subprocess.run(["debugfs", "-R", f"rdump /var/log/journal {dest}", f"{self.path}?offset={self.root_offset}"],
                       capture_output=True)
        args = ["journalctl", "-D", str(dest / "journal"), "--no-pager", "-n", "60"]
        for unit in units:
            args += ["-u", unit]
        proc = subprocess.run(args, capture_output=True, text=True)
        return proc.stdout + proc.stderr

    def read(self, path: str) -> str:
        """A file of the data partition (path relative to /var/lib/hearth)."""
        text = self._debugfs(f"cat /{path.lstrip('/')}")
        return text

    def exists(self, path: str) -> bool:
        proc = subprocess.run(["debugfs", "-R", f"stat /{path.lstrip('/')}",
                               f"{self.path}?offset={self.data_offset}"], capture_output=True, text=True)
        return "Inode:" in proc.stdout

    def zero_file(self, path: str, size: int, workdir: Path) -> None:
        """Replace a file of the data partition with zeros (what a power cut can leave)."""
        zeros = workdir / "zeros"
        zeros.write_bytes(b"\0" * size)
        stat = self._debugfs(f"stat /{path.lstrip('/')}")
        self._debugfs(f"rm /{path.lstrip('/')}", write=True)
        self._debugfs(f"write {zeros} /{path.lstrip('/')}", write=True)
        # keep the owner, so Mosquitto (user hearth) could still open it
        for line in stat.splitlines():
            if line.startswith("User:"):
                uid, gid = line.split()[1], line.split()[3]
                self._debugfs(f"set_inode_field /{path.lstrip('/')} uid {uid}", write=True)
                self._debugfs(f"set_inode_field /{path.lstrip('/')} gid {gid}", write=True)


class Machine:
    """One QEMU boot of the disk: web and MQTT forwarded to free loopback ports."""

    def __init__(self, disk: Path, workdir: Path, name: str):
        self.disk, self.workdir, self.name = disk, workdir, name
        self.web_port, self.mqtt_port = free_port(), free_port()
        self.console = workdir / f"console-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Machine":
        vars_fd = self.workdir / "OVMF_VARS.fd"
        if not vars_fd.exists():
            shutil.copy(OVMF_VARS, vars_fd)
        fwd = f"hostfwd=tcp:127.0.0.1:{self.web_port}-:8080,hostfwd=tcp:127.0.0.1:{self.mqtt_port}-:1883"
        # -cpu max: QEMU's default TCG CPU lacks the x86-64-v2 instructions numpy's wheels need.
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "q35", "-m", "3072", "-smp", "2",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={vars_fd}",
            "-drive", f"file={self.disk},format=raw,if=virtio",
            "-nic", f"user,model=virtio-net-pci,{fwd}",
            "-serial", f"file:{self.console}", "-display", "none", "-no-reboot",
        ]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(self.workdir / f"qemu-{self.name}.err").open("w"))
        return self

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read()

    def wait_ready(self, timeout: float) -> float:
        """Seconds from power-on until GET /health answers 200 with the broker connected."""
        deadline = self.started + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}); console tail:\n{self.console_text()[-3000:]}")
            try:
                status, body = self.get("/health")
                last = body.decode(errors="replace")
                if status == 200 and json.loads(body).get("ok"):
                    return time.monotonic() - self.started
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(3)
        raise AssertionError(f"/health not ready after {timeout:.0f} s (last: {last}); console tail:\n"
                             f"{self.console_text()[-3000:]}")

    def power_off(self) -> None:
        """Pull the plug: SIGKILL, no shutdown, no sync."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "Machine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.power_off()


# Fixtures (imported by the test modules: a conftest.py here would shadow tests/conftest.py,
# which the fast suite imports as `conftest`).

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
