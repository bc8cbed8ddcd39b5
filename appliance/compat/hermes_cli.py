"""`hearth hermes enable|disable|show`: switch Hermes compatibility and print the satellites' login."""

from __future__ import annotations

import os
import sys

from appliance.compat import hermes_account

COMMAND = "hermes"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="Hermes (Rhasspy) compatibility: enable, disable, show the login")
    p.add_argument("action", choices=("enable", "disable", "show"))


def run(args, settings) -> int:
    if args.action in ("enable", "disable"):
        settings = hermes_account.set_enabled(settings, args.action == "enable", args.config)
    if not settings.hermes.enabled:
        print("Hermes compatibility is off (hearth hermes enable switches it on).")
        if args.action == "disable" and _running(settings):
            print("Restart Hearth to apply.", file=sys.stderr)
        return 0
    login = hermes_account.ensure_login(settings.data_dir)
    print(hermes_account.advertised_url(settings, login))
    print(f"Hermes compatibility is on. {hermes_account.WARNING}", file=sys.stderr)
    if args.action != "show" and _running(settings):
        # the service writes the broker's password file and ACL (with this login) when it starts
        print("Restart Hearth (systemctl restart hearth, or stop and start ./build.sh run) to apply.", file=sys.stderr)
    return 0


def _running(settings) -> bool:
    pid_file = settings.data_dir / "hearth.pid"
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
        return True
    except (OSError, ValueError):
        return False
