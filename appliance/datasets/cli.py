"""`hearth data import PATH [--name NAME] | list | remove NAME`: datasets another household or a
community shares (docs/web.md, "Datasets"). Asks the running service over the control channel; with
none running, acts alone under the service lock."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.datasets import commands
from appliance.datasets.checks import DatasetRefused
from appliance.process import control
from appliance.state.config import Settings
from appliance.state.storage import Disk

COMMAND = "data"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="datasets from other households: import (checked), list, remove")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    imp = sub.add_parser("import", help="import a dataset from a zip or a folder (a USB stick)")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", help="the set's name on this box (default: from the file or folder name)")
    sub.add_parser("list", help="the imported datasets")
    rm = sub.add_parser("remove", help="delete an imported dataset")
    rm.add_argument("name")


def run(args: argparse.Namespace, settings: Settings) -> int:
    match args.data_command:
        case "import":
            action, params = "data.import", {"path": str(args.path.resolve()), "name": args.name}   # the service has its own cwd
        case "remove":
            action, params = "data.remove", {"name": args.name}
        case _:
            action, params = "data.list", {}
    try:
        result = control.call(settings.data_dir, action, params, alone=lambda: _alone(settings, action, params),
                              holder=f"hearth data {args.data_command}", timeout_s=None)
    except (DatasetRefused, control.ControlError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    match args.data_command:
        case "import":
            print(f"imported {result['name']}: {result['rows']} utterances, {result['audio_s']:.0f} s of audio, "
                  f"{result['bytes'] / 2**20:.1f} MiB, in {result['path']}")
        case "remove":
            print(f"removed {args.name}")
        case _:
            for row in result["datasets"]:
                print(f"{row['name']}: {row.get('rows', '?')} utterances, {row.get('audio_s', 0):.0f} s, "
                      f"from {row.get('source', '?')} on {row.get('imported', '?')}")
            if not result["datasets"]:
                print("no imported datasets")
    return 0


def _alone(settings: Settings, action: str, params: dict) -> dict:
    disk = Disk(settings.data_dir, lambda: settings.storage.reserve_mb)
    return commands.perform(commands.datasets_for(settings.data_dir, lambda: settings.privacy, disk), action, params)
