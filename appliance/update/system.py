"""RAUC on this box: the executable and its system config.

The system config (`/etc/rauc/system.conf`, written by the image) names this box's `compatible`
(e.g. `hearth-x86_64`), the keyring that bundles must be signed for, and the slots. A checkout run
by `./build.sh run` has neither RAUC nor the config: `system()` then raises NotAppliance, and every
update command and the System page say so.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.update.errors import NotAppliance, UpdateError

NOT_APPLIANCE = "updates need the appliance image"


@dataclass(frozen=True)
class SlotConfig:
    name: str                # rootfs.0
    device: str              # /dev/disk/by-partlabel/root-a, or a file
    bootname: str            # A

    def size(self) -> int | None:
        """Bytes the slot's device holds (None when unknown). A block device's size is read from
        sysfs (world-readable: the service's user may not open the partition); a file's from itself."""
        real = Path(os.path.realpath(self.device))
        sysfs = Path("/sys/class/block") / real.name / "size"
        if str(real).startswith("/dev/") and sysfs.exists():
            try:
                return int(sysfs.read_text()) * 512 or None  # sysfs counts 512-byte sectors; 0: no medium
            except (OSError, ValueError):
                return None
        try:
            fd = os.open(real, os.O_RDONLY)
        except OSError:
            return None
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class RaucSystem:
    rauc: str                # the executable's path
    conf: Path
    compatible: str
    keyring: Path
    slots: tuple[SlotConfig, ...]

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        env = {**os.environ, "LC_ALL": "C"}
        return subprocess.run([self.rauc, *args], capture_output=True, text=True, timeout=timeout, env=env)

    def slot_by_bootname(self, bootname: str) -> SlotConfig | None:
        return next((s for s in self.slots if s.bootname == bootname), None)


def system(rauc: str, conf: str) -> RaucSystem:
    """RAUC and its config on this box; NotAppliance with the reason when this is not the appliance."""
    exe = shutil.which(rauc)
    if exe is None:
        raise NotAppliance(f"{NOT_APPLIANCE} (RAUC not installed: no '{rauc}' on this machine)")
    path = Path(conf)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotAppliance(f"{NOT_APPLIANCE} (RAUC has no system config at {path})") from None
    except OSError as exc:
        raise UpdateError(f"cannot read RAUC's system config {path}: {exc.strerror}") from None
    try:
        parser.read_string(text, source=str(path))
        compatible = parser.get("system", "compatible")
        keyring = Path(parser.get("keyring", "path"))
    except (configparser.Error, KeyError) as exc:
        raise UpdateError(f"RAUC's system config {path} is incomplete ({exc})") from None
    if not keyring.is_absolute():
        keyring = path.parent / keyring            # RAUC reads relative paths from the config's folder
    slots = tuple(
        SlotConfig(section[len("slot."):], parser.get(section, "device", fallback=""),
                   parser.get(section, "bootname", fallback=""))
        for section in parser.sections() if section.startswith("slot.") and parser.get(section, "bootname", fallback="")
    )
    return RaucSystem(rauc=exe, conf=path, compatible=compatible, keyring=keyring, slots=slots)
