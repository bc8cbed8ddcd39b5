"""`hearth helper join URL | run` on the machine that lends; `hearth helpers` on the box."""

from __future__ import annotations

import sys

from appliance.state.config import Settings

COMMAND = "helper"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="lend this machine's engines to a Hearth box (docs/helpers.md)")
    sub = p.add_subparsers(dest="helper_command", required=True, metavar="ACTION")
    join = sub.add_parser("join", help="pair with a box: shows a code a person confirms there")
    join.add_argument("box", help="the box's web address, e.g. http://hearth.local:8080")
    join.add_argument("--name", default="", help="what the box calls this helper (default: from the host name)")
    join.add_argument("--run", action="store_true", help="start taking jobs once joined")
    sub.add_parser("run", help="take jobs from the box until stopped (Ctrl-C, SIGTERM)")


def run(args, settings: Settings) -> int:
    from appliance.helpers import join as joining
    from appliance.helpers import worker

    def say(line: str) -> None:
        print(line, flush=True)

    if args.helper_command == "join":
        joining.join(args.box, settings.data_dir, args.name, say)
        if not args.run:
            return 0
    helper = worker.run(settings, joining.load_credentials(settings.data_dir), say)   # JoinError: one 'Error:' line
    if helper.removed:
        print(f"Error: {helper.removed}", file=sys.stderr, flush=True)
        return 1
    return 0
