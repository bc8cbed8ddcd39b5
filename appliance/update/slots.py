"""Both slots as RAUC reports them: `rauc status --detailed --output-format=json`.

RAUC keeps, per slot, the bundle last written to it (compatible, version) and when; the
bootloader's view (`boot_status` good/bad) and which slot booted come from the running system.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass

from appliance.update.errors import UpdateError
from appliance.update.system import RaucSystem


@dataclass(frozen=True)
class Slot:
    name: str                # rootfs.0
    slot_class: str          # rootfs
    bootname: str            # A
    device: str
    state: str               # booted | active | inactive
    boot_status: str         # good | bad | "" (what the bootloader says)
    version: str             # the bundle version written to it ("" when RAUC never wrote it)
    installed_at: str        # when RAUC wrote it (ISO time, "" when never)
    install_status: str      # RAUC's record of that write: ok | failed | ""

    @property
    def booted(self) -> bool:
        return self.state == "booted"


@dataclass(frozen=True)
class SlotStatus:
    compatible: str
    booted: str              # the booted slot's bootname
    primary: str             # the slot the bootloader tries next ("" when it cannot say)
    slots: tuple[Slot, ...]

    def by_bootname(self, bootname: str) -> Slot | None:
        return next((s for s in self.slots if s.bootname == bootname), None)

    def to_dict(self) -> dict:
        return {"compatible": self.compatible, "booted": self.booted, "primary": self.primary,
                "slots": [asdict(s) for s in self.slots]}


def parse(text: str) -> SlotStatus:
    doc = json.loads(text)
    slots = []
    for entry in doc.get("slots") or []:
        for name, info in entry.items():
            status = info.get("slot_status") or {}
            bundle = status.get("bundle") or {}
            installed = status.get("installed") or {}
            slots.append(Slot(
                name=name, slot_class=str(info.get("class") or ""), bootname=str(info.get("bootname") or ""),
                device=str(info.get("device") or ""), state=str(info.get("state") or ""),
                boot_status=str(info.get("boot_status") or ""), version=str(bundle.get("version") or ""),
                installed_at=str(installed.get("timestamp") or ""), install_status=str(status.get("status") or ""),
            ))
    slots.sort(key=lambda s: s.bootname or s.name)
    return SlotStatus(compatible=str(doc.get("compatible") or ""), booted=str(doc.get("booted") or ""),
                      primary=str(doc.get("boot_primary") or ""), slots=tuple(s for s in slots if s.bootname))


def read(system: RaucSystem) -> SlotStatus:
    """RAUC's view now; UpdateError when its service does not answer."""
    try:
        done = system.run("status", "--detailed", "--output-format=json", timeout=10)
    except subprocess.TimeoutExpired:
        raise UpdateError("RAUC's service did not answer within 10 s", "rauc_unavailable") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise UpdateError(f"RAUC's service does not answer ({detail}): is rauc.service running?", "rauc_unavailable")
    try:
        return parse(done.stdout)
    except (ValueError, AttributeError, TypeError) as exc:
        raise UpdateError(f"RAUC's status could not be read ({exc})", "rauc_output") from None


def mark_good(system: RaucSystem) -> str:
    """Mark the booted slot good (the bootloader stops counting tries); RAUC's answer."""
    done = system.run("status", "mark-good", timeout=30)
    if done.returncode != 0:
        raise UpdateError(f"rauc status mark-good failed: {done.stderr.strip()[-300:]}", "mark_good_failed")
    return done.stdout.strip()
