"""`hearth firmware status | check [TYPE] | import DIR | channel DEVICE stable|beta | resume TYPE`.

Every action goes to the running service over the control channel, so the service stays the one
writer of the firmware cache; with no service running the command does it alone, holding the
service lock meanwhile (firmware_cache/commands.py has the actions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.process import control
from appliance.state.config import Settings
from appliance.state.store import Store
from firmware_cache import commands
from firmware_cache.errors import FirmwareError

COMMAND = "firmware"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="firmware cache: status, upstream check, import from a folder")
    sub = p.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")
    sub.add_parser("status", help="releases per device type, downloads, rollouts, disk use")
    check = sub.add_parser("check", help="read the upstream manifests now and download what is new")
    check.add_argument("type", nargs="?", help="only this device type")
    check.add_argument("--url", help="upstream manifest URL template for TYPE ({type}, {channel})")
    imp = sub.add_parser("import", help="import manifests and images from a folder or USB stick")
    imp.add_argument("dir", type=Path)
    chan = sub.add_parser("channel", help="set the release channel a device follows")
    chan.add_argument("device")
    chan.add_argument("channel", choices=("stable", "beta"))
    resume = sub.add_parser("resume", help="resume a paused staged rollout")
    resume.add_argument("type")
    resume.add_argument("--channel", choices=("stable", "beta"), default="stable")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Ask the running service (appliance/process/control.py); act alone, under its lock, only when none runs."""
    action, params = _request(args)
    try:
        result = control.call(settings.data_dir, action, params, alone=lambda: _alone(settings, action, params),
                              holder=f"hearth firmware {args.firmware_command}")
    except (FirmwareError, control.ControlError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    match args.firmware_command:
        case "status":
            print_status(result)
        case "check" | "import":
            return _print_outcomes(result["outcomes"])
        case "channel":
            print(f"{args.device} now follows {args.channel}")
        case "resume":
            row = result["rollout"]
            print(f"{args.type} {row['version']} ({args.channel}): rollout {row['state']}")
    return 0


def _request(args: argparse.Namespace) -> tuple[str, dict]:
    match args.firmware_command:
        case "check":
            return "firmware.check", {"type": args.type, "url": args.url}
        case "import":
            return "firmware.import", {"dir": str(args.dir.resolve())}     # the service has its own cwd
        case "channel":
            return "firmware.channel", {"device": args.device, "channel": args.channel}
        case "resume":
            return "firmware.resume", {"type": args.type, "channel": args.channel}
    return "firmware.status", {}


def _alone(settings: Settings, action: str, params: dict) -> dict:
    """No service runs (we hold its lock): our own cache, for this one action."""
    from firmware_cache.service import FirmwareCache

    store = Store(settings.data_dir / "hearth.db")
    cache = FirmwareCache(settings.firmware, settings.data_dir, store)
    cache.blobs.reserve = lambda: settings.storage.reserve_mb * 2**20     # fetches leave the low-disk reserve free
    try:
        return commands.perform(cache, action, params)
    finally:
        cache.stop()
        store.close()


def _print_outcomes(outcomes: list[dict]) -> int:
    failed = 0
    for o in outcomes:
        if o["state"] == "error":
            failed += 1
            print(f"Error: {o['device_type']} {o['channel']}: {o['error']}", file=sys.stderr)
        elif o["state"] == "none":
            print(f"{o['device_type']} {o['channel']}: no release upstream")
        else:
            print(f"{o['device_type']} {o['channel']}: {o['version']} cached and verified")
    return 1 if failed else 0


def print_status(status: dict) -> None:
    print(f"disk: {status['used_bytes'] / 2**20:.1f} MiB of {status['quota_bytes'] / 2**20:.0f} MiB quota")
    channels = status["channels"]
    if not channels and not status["types"]:
        print("no device types yet")
    for row in channels:
        line = f"{row['device_type']} {row['channel']}: current {row['current'] or '-'}, previous {row['previous'] or '-'}"
        if row["error"]:
            line += f"  (last check failed: {row['error']})"
        print(line)
    for sha, done in status["downloading"].items():
        print(f"downloading {sha[:12]}: {done / 2**20:.1f} MiB")
    for row in status["releases"]:
        if row["state"] in ("pending", "failed", "rejected"):
            print(f"{row['device_type']} {row['channel']} {row['version']}: {row['state']} {row['error']}".rstrip())
    for row in status["rollouts"]:
        if row["state"] != "done":
            print(f"rollout {row['device_type']} {row['channel']} {row['version']}: {row['state']}"
                  f" (canary {row['canary'] or '-'}) {row['error']}".rstrip())
    for row in status["devices"]:
        print(f"device {row['device']} ({row['device_type']}, {row['channel']}): runs {row['version'] or '?'}"
              f" {row['state']} {row['error']}".rstrip())
