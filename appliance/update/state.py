"""The last update's result, on the data partition (`<data>/update/last.json`, written atomically).

    installing   rauc install is writing the inactive slot
    installed    written and made primary: the next boot tries it
    failed       refused or failed while writing; the running slot was never touched
    booted       the new slot booted; not yet healthy (`hearth update confirm` marks it good)
    good         the new slot is healthy and marked good
    rolled_back  the new slot never became healthy: the bootloader went back to the old one

What a boot says about the last install (`assess`) is decided once per boot: the record keeps the
kernel's boot id of the boot that wrote it, so a service restart is not mistaken for a reboot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance.state import storage
from appliance.update.slots import SlotStatus

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


class LastUpdate:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "update" / "last.json"

    def read(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def write(self, record: dict) -> dict:
        record = {**record, "updated_at": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        storage.atomic_write(self.path, json.dumps(record, indent=1, sort_keys=True), self.data_dir)
        return record

    def begin(self, version: str, source: str, target: str, target_slot: str, came_from: str) -> dict:
        return self.write({"version": version, "source": source, "target": target, "target_slot": target_slot,
                           "from": came_from, "boot_id": boot_id(), "started_at": time.time(),
                           "result": "installing",
                           "message": f"installing {version} into slot {target} ({target_slot})"})

    def finish(self, record: dict, ok: bool, message: str) -> dict:
        return self.write({**record, "result": "installed" if ok else "failed", "message": message,
                           "finished_at": time.time()})

    def refused(self, source: str, file: str, code: str, message: str) -> dict:
        return self.write({"version": "", "source": source, "file": file, "boot_id": boot_id(), "result": "failed",
                           "error": code, "message": message, "started_at": time.time(), "finished_at": time.time()})

    def assess(self, status: SlotStatus, tries: int) -> dict | None:
        """After a reboot: what happened to the last install (None when nothing changed)."""
        last = self.read()
        if not last or last.get("boot_id") == boot_id():
            return None
        version, target, came_from = last.get("version", "?"), last.get("target", "?"), last.get("from", "?")
        result = last.get("result")
        if result == "installing":
            return self.write({**last, "boot_id": boot_id(), "result": "failed",
                               "message": f"the install of {version} into slot {target} was interrupted (power cut "
                                          f"or crash); slot {came_from} kept running"})
        if result not in ("installed", "booted"):
            return None
        if status.booted == target:
            if result == "booted":
                return None
            return self.write({**last, "boot_id": boot_id(), "result": "booted",
                               "message": f"{version} in slot {target} booted; it is marked good once Hearth is "
                                          f"healthy"})
        if status.booted == came_from:
            return self.write({**last, "boot_id": boot_id(), "result": "rolled_back",
                               "message": f"{version} in slot {target} never became healthy; back on {came_from} "
                                          f"after {tries} tries"})
        return None

    def marked_good(self, status: SlotStatus) -> dict | None:
        last = self.read()
        if last and last.get("result") in ("installed", "booted") and status.booted == last.get("target"):
            return self.write({**last, "boot_id": boot_id(), "result": "good",
                               "message": f"{last.get('version')} in slot {last.get('target')} is healthy and "
                                          f"marked good"})
        return None
