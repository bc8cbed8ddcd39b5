"""`hearth admin reset-password`: a new web admin password, printed once.

Signed-in browsers keep their session until it expires or the service restarts.
"""

from __future__ import annotations

from appliance.state.admin import AdminPassword

COMMAND = "admin"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="manage the web page's admin login")
    actions = p.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    actions.add_parser("reset-password", help="set a new random admin password and print it")


def run(args, settings) -> int:
    if args.admin_command == "reset-password":
        password = AdminPassword(settings.data_dir).reset()
        print(f"new web admin password: {password}")
        print("sign in as 'admin' with it; it is not shown again")
    return 0
