"""`hearth update status [--json] | install FILE | confirm [--timeout S]`.

`install` and `status` go to the running service over the control channel (appliance/process/control.py),
so the service stays the one writer of the update record; with no service running the command
does the work itself under the service lock. A bundle on a USB stick that the service's user
cannot read is first copied to `<data>/update/incoming/` (the stick may then be pulled).
`confirm` is what the image's boot-check unit runs: it waits until Hearth is healthy, then marks
the booted slot good; otherwise it exits 1 and the bootloader falls back after its tries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from appliance.process import control

from appliance.state import storage
from appliance.state.config import Settings
from appliance.update import health
from appliance.update.errors import UpdateError
from appliance.update.room import Updates, perform
from appliance.update.system import system

COMMAND = "update"
COPY_CHUNK = 4 << 20


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="update the appliance: status, install a bundle, confirm a new slot")
    sub = p.add_subparsers(dest="update_command", required=True, metavar="ACTION")
    status = sub.add_parser("status", help="both slots, their versions, which booted, the last update's result")
    status.add_argument("--json", action="store_true", help="print JSON")
    inst = sub.add_parser("install", help="verify a bundle (.raucb) and write it to the inactive slot")
    inst.add_argument("file", type=Path)
    confirm = sub.add_parser("confirm", help="wait until Hearth is healthy, then mark the booted slot good")
    confirm.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for health (default 240)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        match args.update_command:
            case "status":
                return _status(args, settings)
            case "install":
                return _install(args.file, settings)
            case "confirm":
                return _confirm(args.timeout, settings)
    except (UpdateError, control.ControlError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def _ask(settings: Settings, action: str, params: dict) -> dict:
    return control.call(settings.data_dir, action, params, holder=f"hearth {action.replace('.', ' ')}",
                        alone=lambda: _alone(settings, action, params))


def _alone(settings: Settings, action: str, params: dict) -> dict:
    """No service runs (we hold its lock): this command is the writer, and tells what the last boot did.
    Run as root on a box whose service runs as its own user, what it wrote is handed to that user."""
    updates = Updates(settings)
    try:
        updates.assess_boot()
        return perform(updates, action, params)
    finally:
        _hand_over(settings.data_dir / "update", settings.data_dir)


def _hand_over(folder: Path, data_dir: Path) -> None:
    try:
        owner = data_dir.stat()
    except OSError:
        return
    if os.getuid() != 0 or owner.st_uid == 0 or not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        if path.stat().st_uid == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def _status(args, settings: Settings) -> int:
    doc = _ask(settings, "update.status", {})
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print(describe(doc))
    return 0 if doc.get("available") else 1


def describe(doc: dict) -> str:
    if not doc.get("available"):
        return doc.get("reason", "updates are not available")
    lines = [f"compatible: {doc.get('compatible') or '?'}"]
    if doc.get("reason"):
        lines.append(doc["reason"])
    for slot in doc.get("slots") or []:
        marks = ["booted" if slot["state"] == "booted" else slot["state"]]
        if doc.get("primary") and doc["primary"] in (slot["name"], slot["bootname"]):
            marks.append("boots next")
        marks.append(f"marked {slot['boot_status']}" if slot["boot_status"] else "boot state unknown")
        lines.append(f"slot {slot['bootname']} ({slot['name']}): {slot['version'] or 'version unknown'}, "
                     f"{', '.join(marks)}")
    last = doc.get("last")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.get("updated_at", 0)))
        lines.append(f"last update: {last.get('message', '')} ({last.get('result')}, {when})")
    else:
        lines.append("last update: none yet")
    offer = doc.get("offer")
    if doc.get("channel"):
        lines.append(f"channel: {doc['channel']} (the System page changes it)")
    if offer and offer.get("version"):
        lines.append(f"from the firmware cache: {offer['version']} {offer['channel']} ({offer['state']}{': ' + offer['message'] if offer.get('message') else ''})")
    return "\n".join(lines)


def _install(file: Path, settings: Settings) -> int:
    system(settings.update.rauc, settings.update.system_conf)       # not the appliance: say so first
    file = file.resolve()
    if not file.is_file():
        raise UpdateError(f"no such file: {file}", "not_found")
    staged, remove = _staged(file, settings)
    print(f"verifying {file.name} ({file.stat().st_size / 2**20:.1f} MiB) ...", flush=True)
    try:
        result = _ask(settings, "update.install", {"file": str(staged), "source": "usb", "remove": remove})
    except (control.ControlError, UpdateError) as exc:
        exc.args = (str(exc).replace(staged.name, file.name),)   # the service saw its staged copy: name the person's file
        raise
    print(result["last"]["message"].replace(staged.name, file.name))
    return 0


def _staged(file: Path, settings: Settings) -> tuple[Path, bool]:
    """The path the service can read: the file itself, or a copy on the data disk owned by the service's user."""
    try:
        owner = os.stat(control.socket_path(settings.data_dir)).st_uid
    except OSError:
        return file, False                      # no service: this command installs it itself
    if owner == os.getuid() or owner == 0:
        return file, False
    incoming = settings.data_dir / "update" / "incoming"      # the service made it, as its own user
    if not incoming.is_dir():
        raise UpdateError(f"{incoming} is missing: restart the Hearth service", "not_found")
    size = file.stat().st_size
    free = storage.free_bytes(incoming)
    if size > free:
        raise UpdateError(f"the data disk has {free / 2**20:.0f} MiB free; {file.name} needs {size / 2**20:.0f} MiB",
                          "disk_full")
    copy = incoming / f"usb-{os.getpid()}-{file.name}"
    with storage.translate(settings.data_dir), file.open("rb") as src, copy.open("wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    os.chown(copy, owner, -1)
    return copy, True


def _confirm(timeout_s: float, settings: Settings) -> int:
    system(settings.update.rauc, settings.update.system_conf)
    t0 = time.monotonic()
    seen = health.wait(settings, timeout_s)
    if not seen.ok:
        print(f"Error: Hearth did not become healthy within {timeout_s:.0f} s ({seen.reason}); the booted slot is "
              "not marked good, so the bootloader falls back to the other slot after its tries", file=sys.stderr)
        return 1
    result = control.ask(settings.data_dir, "update.mark_good", {}, timeout_s=60)
    print(f"healthy after {time.monotonic() - t0:.1f} s; {result['rauc']}")
    return 0
