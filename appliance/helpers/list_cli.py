"""`hearth helpers`: the paired helpers, what they offer and what they have done.

Asks the running service (its roster knows who is online and the job counts); with no service
running, lists the registry's helpers alone. Revoke one like a device: `hearth devices revoke ID`.
"""

from __future__ import annotations

from appliance.process import control
from appliance.state.config import Settings

COMMAND = "helpers"


def add_parser(subparsers) -> None:
    subparsers.add_parser(COMMAND, help="list the helpers lending this box their engines (docs/helpers.md)")


def _alone(settings: Settings) -> list[dict]:
    from appliance.devices.registry import Registry
    from appliance.state.store import Store
    from mqtt.jobs import HELPER_TYPE
    store = Store(settings.data_dir / "hearth.db")
    try:
        return [{"id": d.id, "name": d.name, "online": None, "models": [], "device": "", "jobs": 0, "mean_ms": None,
                 "problem": "service not running"}
                for d in Registry(store).list() if d.device_type == HELPER_TYPE and d.activated_at]
    finally:
        store.close()


def run(args, settings: Settings) -> int:
    rows = control.call(settings.data_dir, "helpers.list", {}, alone=lambda: _alone(settings), holder="hearth helpers")
    head = ("ID", "NAME", "ONLINE", "MODELS", "DEVICE", "JOBS", "MEAN MS", "NOTE")
    table = [(r["id"], r["name"], {True: "yes", False: "no"}.get(r["online"], "?"), ",".join(r["models"]) or "-",
              r["device"] or "-", str(r["jobs"]), "-" if r["mean_ms"] is None else f"{r['mean_ms']:.0f}",
              r.get("problem") or "") for r in rows]
    widths = [max(len(str(x[i])) for x in (head, *table)) for i in range(len(head))]
    for row in (head, *table):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    if not rows:
        print("no helpers: on another machine run 'hearth helper join http://THIS-BOX:8080'")
    return 0
