"""Verify, then `rauc install`, one install at a time, with progress.

Nothing is written to a slot before the bundle passed every check (bundle.py): RAUC's signature
check against the box's keyring, this box's compatible, each image fits its slot. RAUC itself
writes only the inactive slot (never the booted one) and makes it primary when the write is
complete, so a power cut mid-write leaves the old slot booting.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.state.config import UpdateSettings
from appliance.update import bundle, slots
from appliance.update.errors import Busy, UpdateError
from appliance.update.state import LastUpdate
from appliance.update.system import RaucSystem, system

PROGRESS = re.compile(r"^\s*(\d{1,3})%\s+(.*)$")
INSTALL_TIMEOUT_S = 3600


@dataclass
class Progress:
    state: str = "idle"      # idle | verifying | installing | installed | failed
    percent: int = 0
    step: str = ""
    version: str = ""
    message: str = ""
    error: str = ""          # the code of a failure
    started_at: float = 0.0
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "log"}


@dataclass(frozen=True)
class Verified:
    bundle: bundle.Bundle
    status: slots.SlotStatus
    target: slots.Slot       # the slot RAUC will write: never the booted one


class Installer:
    def __init__(self, settings: UpdateSettings, data_dir: Path):
        self.settings = settings
        self.last = LastUpdate(data_dir)
        self.progress = Progress()
        self._lock = threading.Lock()

    def system(self) -> RaucSystem:
        return system(self.settings.rauc, self.settings.system_conf)

    def verify(self, path: Path) -> Verified:
        rauc = self.system()
        found = bundle.inspect(rauc, Path(path))
        status = slots.read(rauc)
        booted = status.by_bootname(status.booted)
        slot_class = booted.slot_class if booted else "rootfs"
        others = [s for s in status.slots if not s.booted and s.slot_class == slot_class]
        if not others:
            raise UpdateError(f"RAUC reports no inactive {slot_class} slot to write (booted: {status.booted or '?'})",
                              "no_inactive_slot")
        target = others[0]
        bundle.check_fits(rauc, found, target.bootname)
        return Verified(found, status, target)

    def install(self, path: Path, source: str, remove: bool = False) -> dict:
        """Verify and install `path`; the last update's record when done. Busy while another runs.
        `remove`: delete the file afterwards (an upload or a copy), installed or not."""
        self.begin()
        return self.finish(path, source, remove)

    def begin(self) -> None:
        """Take the one install slot (Busy when taken); `finish` must follow, on any thread."""
        if not self._lock.acquire(blocking=False):
            raise Busy(f"an update is being installed now ({self.progress.version or 'verifying'}, "
                       f"{self.progress.percent}%): wait for it to finish")
        self.progress = Progress(state="verifying", step="verifying the bundle", started_at=time.time())

    def finish(self, path: Path, source: str, remove: bool = False) -> dict:
        """The install itself; its end shows in `progress` only once the file is gone (when `remove`)."""
        path = Path(path)
        end = {"state": "failed"}
        try:
            record = self._install(path, source)
            end = {"state": "installed", "percent": 100, "message": record["message"]}
            return record
        except Exception as exc:           # UpdateError, or e.g. the data disk full while recording
            end.update(message=str(exc), error=getattr(exc, "code", "internal"))
            raise
        finally:
            if remove:
                path.unlink(missing_ok=True)
            for key, value in end.items():
                setattr(self.progress, key, value)
            self._lock.release()

    def busy(self) -> bool:
        return self._lock.locked()

    def _install(self, path: Path, source: str) -> dict:
        try:
            checked = self.verify(path)
        except UpdateError as exc:
            self.last.refused(source, path.name, exc.code, str(exc))
            raise
        found, target = checked.bundle, checked.target
        came_from = checked.status.booted
        self.progress.version = found.version
        record = self.last.begin(found.version, source, target.bootname, target.name, came_from)
        self.progress.state, self.progress.step = "installing", f"writing slot {target.bootname}"
        ok, lines = self._run_rauc(self.system(), path)
        if ok:
            message = f"{found.version} written to slot {target.bootname} ({target.name}); reboot to start it"
        else:
            reason = next((ln for ln in reversed(lines) if ln.startswith("LastError:")), lines[-1] if lines else "")
            message = (f"installing {found.version} into slot {target.bootname} failed: "
                       f"{reason.removeprefix('LastError:').strip() or 'see the log'}; slot {came_from} keeps running")
        done = self.last.finish(record, ok, message)
        if not ok:
            raise UpdateError(message, "install_failed")
        return done

    def _run_rauc(self, rauc: RaucSystem, path: Path) -> tuple[bool, list[str]]:
        lines: list[str] = []
        proc = subprocess.Popen([rauc.rauc, "install", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "LC_ALL": "C"})
        timer = threading.Timer(INSTALL_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                if not line:
                    continue
                lines.append(line)
                if match := PROGRESS.match(line):
                    self.progress.percent = min(100, int(match.group(1)))
                    self.progress.step = match.group(2)
            code = proc.wait()
        finally:
            timer.cancel()
        self.progress.log = lines[-50:]
        return code == 0, lines
