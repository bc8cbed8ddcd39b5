"""The image tier: build the appliance once (or reuse a fresh build), boot it under QEMU (TCG +
OVMF) with forwarded loopback ports, and read its data partition from the host without mounting.

A build is fresh when out/hearth-x86_64.raw is newer than every file it is made from (image/,
the service's packages, pyproject.toml); otherwise `./build.sh image --target x86_64` runs.
"""

from __future__ import annotations

import hashlib
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


def built_image(target: str, artifact: Path, timeout: int, extra: tuple[str, ...] = (), also: str = "") -> Path:
    """The image for `target`, rebuilt when any source is newer than it (or nothing matches the
    glob `also` under out/ newer than it: the update bundle built with it)."""
    fresh = artifact.exists() and artifact.stat().st_mtime > newest_source()
    if fresh and also:
        fresh = any(p.stat().st_mtime >= artifact.stat().st_mtime for p in OUT.glob(also))
    if fresh:
        return artifact
    started = time.monotonic()
    proc = subprocess.run([str(ROOT / "build.sh"), "image", "--target", target, *extra], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"./build.sh image --target {target} failed:\n{proc.stdout[-4000:]}")
    record("build_s_" + target, round(time.monotonic() - started, 1))
    assert artifact.exists(), f"the build said it succeeded but wrote no {artifact}"
    return artifact


RUN = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())    # this pytest session (vmtools is imported once)


def record(key: str, value) -> None:
    """A figure measured by this run (tests/artifacts/image-figures.json; a new run starts it
    afresh). At the end of the session report.write() turns them into docs/benchmarks-image.md."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "image-figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if data.get("run") != RUN:
        data = {"run": RUN}
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
        # Root slots A and B (RAUC's rootfs.0 and rootfs.1): offset and size in bytes.
        self.slots = {slot: (parts[f"hearth-root-{slot.lower()}"]["start"] * sector,
                             parts[f"hearth-root-{slot.lower()}"]["size"] * sector) for slot in "AB"}
        self.root_offset = self.slots["A"][0]
        self.data_offset = parts["hearth-data"]["start"] * sector
        self.data_size = parts["hearth-data"]["size"] * sector

    def slot_sha256(self, slot: str) -> str:
        """The sha256 of a whole root slot, read from the host (what QEMU has written so far)."""
        offset, size = self.slots[slot]
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            f.seek(offset)
            left = size
            while left:
                chunk = f.read(min(left, 8 << 20))
                assert chunk, f"{self.path} ends inside slot {slot}"
                digest.update(chunk)
                left -= len(chunk)
        return digest.hexdigest()

    def authorize_ssh(self, public_key: str, workdir: Path) -> None:
        """Put a public key where the box takes SSH keys from (docs/appliance.md, "Recovery"):
        /var/lib/hearth/ssh/authorized_keys on the data partition, as a person would."""
        keyfile = workdir / "authorized_keys"
        keyfile.write_text(public_key)
        keyfile.chmod(0o600)
        subprocess.run(["debugfs", "-w", "-R", "mkdir /ssh", f"{self.path}?offset={self.data_offset}"], capture_output=True)
        subprocess.run(["debugfs", "-w", "-R", "rm /ssh/authorized_keys", f"{self.path}?offset={self.data_offset}"], capture_output=True)
        self._debugfs(f"write {keyfile} /ssh/authorized_keys", write=True)

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

    def __init__(self, disk: Path, workdir: Path, name: str, *, reboot: bool = False,
                 ssh_key: Path | None = None, stick: Path | None = None):
        """reboot: the guest's reboots stay inside this QEMU (else QEMU exits, -no-reboot);
        ssh_key: forward SSH and log in with this key; stick: a raw image attached read-only as a
        second disk, as a USB stick would be."""
        self.disk, self.workdir, self.name = disk, workdir, name
        self.reboot, self.ssh_key, self.stick = reboot, ssh_key, stick
        self.web_port, self.mqtt_port, self.ssh_port = free_port(), free_port(), free_port()
        self.console = workdir / f"console-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Machine":
        vars_fd = self.workdir / "OVMF_VARS.fd"
        if not vars_fd.exists():
            shutil.copy(OVMF_VARS, vars_fd)
        fwd = f"hostfwd=tcp:127.0.0.1:{self.web_port}-:8080,hostfwd=tcp:127.0.0.1:{self.mqtt_port}-:1883"
        if self.ssh_key:
            fwd += f",hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"
        # -cpu max: QEMU's default TCG CPU lacks the x86-64-v2 instructions numpy's wheels need.
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "q35", "-m", "3072", "-smp", "2",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={vars_fd}",
            "-drive", f"file={self.disk},format=raw,if=virtio",
            "-nic", f"user,model=virtio-net-pci,{fwd}",
            "-serial", f"file:{self.console}", "-display", "none",
        ]
        if not self.reboot:
            cmd.append("-no-reboot")
        if self.stick:
            cmd += ["-drive", f"file={self.stick},format=raw,if=virtio,readonly=on"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(self.workdir / f"qemu-{self.name}.err").open("w"))
        return self

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read()

    def ssh(self, command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command on the box as root over the forwarded SSH port."""
        proc = subprocess.run(self.ssh_args() + [command], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {command!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def ssh_args(self) -> list[str]:
        assert self.ssh_key, "this machine was started without an SSH key"
        return ["ssh", "-i", str(self.ssh_key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=10", "root@127.0.0.1"]

    def boot_id(self) -> str | None:
        """The running boot's id, or None while the box does not answer SSH."""
        try:
            proc = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=40, check=False)
        except subprocess.TimeoutExpired:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def wait_next_boot(self, old_boot_id: str, timeout: float) -> float:
        """After a reboot inside QEMU: seconds until a new boot answers SSH and /health is ready."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}); console tail:\n{self.console_text()[-3000:]}")
            boot = self.boot_id()
            if boot and boot != old_boot_id:
                self.wait_ready(timeout - (time.monotonic() - started), since=started)
                return time.monotonic() - started
            time.sleep(5)
        raise AssertionError(f"no new boot answered within {timeout:.0f} s; console tail:\n{self.console_text()[-3000:]}")

    def wait_ready(self, timeout: float, since: float | None = None) -> float:
        """Seconds from power-on (or `since`) until GET /health answers 200 with the broker connected."""
        since = self.started if since is None else since
        deadline = since + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited ({self.proc.returncode}); console tail:\n{self.console_text()[-3000:]}")
            try:
                status, body = self.get("/health")
                last = body.decode(errors="replace")
                if status == 200 and json.loads(body).get("ok"):
                    return time.monotonic() - since
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
def x86_image(request) -> Path:
    """The x86-64 disk image; building it also installs QEMU, OVMF and debugfs (image/lib/deps.sh).
    At the end of the session the run's figures become docs/benchmarks-image.md."""
    from report import write as write_report

    request.addfinalizer(lambda: write_report(ARTIFACTS / "image-figures.json"))
    image = built_image("x86_64", OUT / "hearth-x86_64.raw", timeout=1500, extra=("--bundle",),
                        also="hearth-x86_64-*.raucb")
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
