"""A real RAUC system for the update tests, without a bootloader or a reboot.

RAUC runs for real: `rauc bundle` builds small signed bundles with throwaway keys (openssl),
`rauc info` verifies them, and `rauc service` runs on a private D-Bus system bus (its own
dbus-daemon) with two file-backed raw slots, so `rauc status`, `rauc install` (plain bundles: a
loop-mounted squashfs; verity bundles need device-mapper, which this machine lacks) and
`rauc status mark-good` are RAUC's own. Two things cannot exist here and are stood in for:
- the bootloader: RAUC's custom bootloader backend protocol, answered by a shell script that
  keeps the primary slot and each slot's good/bad in files (`boot/` beside it);
- a reboot: `reboot(into)` restarts `rauc service --override-boot-slot=<into>` and gives the
  update record another boot id (the kernel's cannot change without a reboot).
The image tier (tests/image/) boots the real image and proves real reboots and rollback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

COMPATIBLE = "hearth-x86_64"
SLOT_BYTES = 4 << 20

BOOTLOADER = """#!/bin/sh
# RAUC's custom bootloader backend, for tests: state in files beside this script.
dir=$(dirname "$0")/boot
mkdir -p "$dir"
case "$1" in
  get-primary) cat "$dir/primary" 2>/dev/null || echo A ;;
  set-primary) echo "$2" > "$dir/primary" ;;
  get-state) cat "$dir/state-$2" 2>/dev/null || echo good ;;
  set-state) echo "$3" > "$dir/state-$2" ;;
  *) exit 1 ;;
esac
"""

BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
 <type>system</type>
 <listen>unix:path={socket}</listen>
 <auth>EXTERNAL</auth>
 <policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
</busconfig>
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A throwaway self-signed signing key: (cert.pem, key.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.cert.pem", folder / f"{name}.key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", f"/O=Hearth test/CN={name}", "-days", "30"], check=True, capture_output=True)
    return cert, key


def make_bundle(out: Path, version: str, cert: Path | None, key: Path | None, compatible: str = COMPATIBLE,
                image_bytes: int = 256 * 1024, fmt: str = "plain") -> Path:
    """A real RAUC bundle with one rootfs image of random bytes; unsigned when cert is None."""
    content = out.parent / f".content-{out.name}"
    shutil.rmtree(content, ignore_errors=True)
    content.mkdir(parents=True)
    (content / "rootfs.img").write_bytes(os.urandom(image_bytes))
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion={version}\ndescription=Hearth {version}\n\n"
        f"[bundle]\nformat={fmt}\n\n[image.rootfs]\nfilename=rootfs.img\n")
    out.unlink(missing_ok=True)
    if cert is None:
        subprocess.run(["mksquashfs", str(content), str(out), "-quiet", "-noappend", "-all-root"], check=True,
                       capture_output=True)
    else:
        subprocess.run(["rauc", "bundle", f"--cert={cert}", f"--key={key}", str(content), str(out)], check=True,
                       capture_output=True)
    shutil.rmtree(content)
    return out


class RaucBox:
    """RAUC's service on a private system bus, with slots A (booted) and B in files."""

    def __init__(self, root: Path, compatible: str = COMPATIBLE, slot_bytes: int = SLOT_BYTES):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = make_key(root / "keys", "box")
        self.slots = {"A": root / "slot-a.img", "B": root / "slot-b.img"}
        for path in self.slots.values():
            with path.open("wb") as fh:
                fh.truncate(slot_bytes)
        self.bootloader = root / "bootloader.sh"
        self.bootloader.write_text(BOOTLOADER)
        self.bootloader.chmod(0o755)
        (root / "rauc-data").mkdir(exist_ok=True)
        self.conf = root / "system.conf"
        self.conf.write_text(
            f"[system]\ncompatible={compatible}\nbootloader=custom\nbundle-formats=plain verity\n"
            f"data-directory={root / 'rauc-data'}\n\n[keyring]\npath={self.cert}\n\n"
            f"[handlers]\nbootloader-custom-backend={self.bootloader}\n\n"
            f"[slot.rootfs.0]\ndevice={self.slots['A']}\ntype=raw\nbootname=A\n\n"
            f"[slot.rootfs.1]\ndevice={self.slots['B']}\ntype=raw\nbootname=B\n")
        self.bus_socket = root / "bus.sock"
        (root / "bus.conf").write_text(BUS.format(socket=self.bus_socket))
        self.address = f"unix:path={self.bus_socket}"
        self._bus: subprocess.Popen | None = None
        self._rauc: subprocess.Popen | None = None
        self._saved_address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")

    def settings(self) -> dict:
        """The [update] section for a Hearth on this box."""
        return {"rauc": "rauc", "system_conf": str(self.conf), "reboot_command": f"touch {self.root / 'rebooted'}"}

    def start(self, booted: str = "A") -> "RaucBox":
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address      # rauc (and hearth subprocesses) find it here
        self._bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={self.root / 'bus.conf'}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: self.bus_socket.exists(), 5, "dbus-daemon's socket")
        self._start_rauc(booted)
        return self

    def _start_rauc(self, booted: str) -> None:
        log = (self.root / "rauc-service.log").open("ab")
        self._rauc = subprocess.Popen(["rauc", f"--conf={self.conf}", "service", f"--override-boot-slot={booted}"],
                                      stdout=log, stderr=log, env={**os.environ, "LC_ALL": "C"})
        _wait_for(lambda: subprocess.run(["rauc", "status", "--output-format=json"], capture_output=True).returncode == 0,
                  10, "rauc service")

    def _stop_rauc(self) -> None:
        if self._rauc is not None:
            self._rauc.terminate()
            self._rauc.wait(10)
            self._rauc = None

    def reboot(self, into: str, data_dir: Path) -> None:
        """What a reboot changes for Hearth: the booted slot, and the kernel's boot id in the update record."""
        self._stop_rauc()
        record = data_dir / "update" / "last.json"
        if record.exists():
            doc = json.loads(record.read_text())
            doc["boot_id"] = f"before-reboot-{time.time()}"
            record.write_text(json.dumps(doc))
        self._start_rauc(into)

    def status(self) -> dict:
        done = subprocess.run(["rauc", "status", "--detailed", "--output-format=json"], capture_output=True, text=True,
                              check=True)
        return json.loads(done.stdout)

    def stop(self) -> None:
        self._stop_rauc()
        if self._bus is not None:
            self._bus.terminate()
            self._bus.wait(10)
        if self._saved_address is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self._saved_address


def _wait_for(ok, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not come up within {timeout_s} s")
