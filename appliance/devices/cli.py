"""`hearth devices list | pair CODE | rename ID NAME | revoke ID | lost [--acknowledge] | wyoming list|allow ADDR|revoke ADDR`.

Works on the registry in the data directory; the running Hearth notices the change within a
second and applies it (broker logins, disconnects, settings, Wyoming clients). The command waits
for that and says whether it happened, or that it takes effect when Hearth next starts.
"""

from __future__ import annotations

import time

from appliance.state.config import Settings
from appliance.devices.manager import APPLIED_KEY, Devices
from appliance.devices.registry import Device
from appliance.devices.wyoming_clients import WyomingAccess
from appliance.state.lost import PAIR_AGAIN, LostReport
from appliance.state.store import Store

COMMAND = "devices"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="list, pair, rename and revoke devices; allow Wyoming clients")
    sub = p.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="the household's devices and the codes waiting for confirmation")
    ls.add_argument("--all", action="store_true", help="include revoked devices")
    pair = sub.add_parser("pair", help="confirm the pairing code a device shows or says")
    pair.add_argument("code")
    pair.add_argument("--name", help="what to call the device (default: from the device)")
    pair.add_argument("--room", default="", help="where it stands")
    rename = sub.add_parser("rename", help="give a device a new name")
    rename.add_argument("id", help="device id (or a unique start of it, or its name)")
    rename.add_argument("name")
    revoke = sub.add_parser("revoke", help="remove a device: its login, tokens and settings go")
    revoke.add_argument("id", help="device id (or a unique start of it, or its name)")
    lost = sub.add_parser("lost", help="devices a registry repair could not bring back (pair them again)")
    lost.add_argument("--acknowledge", action="store_true", help="stop reporting them (/health is ok again)")
    wy = sub.add_parser("wyoming", help="Wyoming clients (Home Assistant): list, allow or revoke an address")
    wy_sub = wy.add_subparsers(dest="wyoming_command", required=True, metavar="ACTION")
    wy_sub.add_parser("list", help="allowed addresses and the ones waiting for a person")
    wy_sub.add_parser("allow", help="let Wyoming clients from this address use speech").add_argument("address")
    wy_sub.add_parser("revoke", help="take an address back (its connections close) or dismiss a waiting one"
                      ).add_argument("address")


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    s = max(0, time.time() - t)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def _table(devices: list[Device]) -> list[str]:
    head = ("ID", "NAME", "ROOM", "TYPE", "STATE", "ONLINE", "MQTT", "LAST SEEN")
    rows = [(d.id, d.name, d.room or "-", d.device_type, d.state, "yes" if d.online else "no",
             d.transport or "-", _ago(d.last_seen)) for d in devices]
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in (head, *rows)]


def _wait_applied(devices: Devices, timeout: float = 3.0) -> str:
    want = devices.registry.generation()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(devices.store.get(APPLIED_KEY, "-1") or -1) >= want:
            return "the running Hearth has applied it"
        time.sleep(0.1)
    return "Hearth is not running (or not answering): it takes effect when Hearth starts"


def _wyoming(args, access: WyomingAccess, devices: Devices) -> None:
    match args.wyoming_command:
        case "list":
            allowed, waiting = access.allowed(), access.waiting()
            print("Allowed Wyoming clients:" if allowed else "No Wyoming client is allowed yet.")
            for c in allowed:
                print(f"  {c.address}  allowed {_ago(c.allowed_at)}")
            if waiting:
                print("\nWaiting for a person (hearth devices wyoming allow ADDRESS):")
                for c in waiting:
                    wants = f"asked for {c.wants.replace(',', ', ')}, " if c.wants else ""
                    print(f"  {c.address}  {wants}first seen {_ago(c.first_seen)}, last {_ago(c.last_seen)}")
        case "allow":
            c = access.allow(args.address)
            print(f"Allowed Wyoming clients from {c.address}; {_wait_applied(devices)}.")
        case "revoke":
            c = access.revoke(args.address)
            what = "revoked (its open connections are closed)" if c.state == "allowed" else "dismissed"
            print(f"Wyoming clients from {c.address}: {what}; {_wait_applied(devices)}.")


def _lost(report: LostReport, acknowledge: bool, say_none: bool = False) -> None:
    state = report.state()
    if say_none and not state["text"] and not acknowledge:
        print("No device was lost in a registry repair.")
    elif acknowledge:
        print(f"Acknowledged {report.acknowledge()} lost device(s); /health no longer reports them.")
    elif state["text"]:
        print(f"\nLost in a registry repair ({state['reason']}):")
        for d in state["devices"]:
            print(f"  {d['label']} ({d['device_type'] or 'device'}): {PAIR_AGAIN}")
        if state["unchecked"]:
            print(f"  and perhaps more: {state['unchecked']}")
        print("When done: hearth devices lost --acknowledge")


def run(args, settings: Settings) -> int:
    store = Store(settings.data_dir / "hearth.db")
    try:
        devices = Devices(store, settings)
        match args.devices_command:
            case "list":
                listed = devices.list(include_revoked=args.all)
                print("\n".join(_table(listed)) if listed else "No devices yet. Pair one: hearth devices pair CODE")
                pending = devices.pending()
                if pending:
                    print("\nAsking to pair (type the code your device shows or says: hearth devices pair CODE):")
                    for p in pending:
                        what = p.name or p.platform or p.device_type
                        times = f", asked {p.asked} times" if p.asked > 1 else ""
                        print(f"  \"{what}\" ({p.device_type}) from {p.client_addr}{times}, "
                              f"expires in {max(0, p.expires - time.time()):.0f} s")
                _lost(LostReport(settings.data_dir), acknowledge=False)
            case "lost":
                _lost(LostReport(settings.data_dir), args.acknowledge, say_none=True)
            case "pair":
                d = devices.confirm(args.code, args.name, args.room)
                print(f"Paired {d.id} \"{d.name}\" ({d.device_type}). It gets its login at its next poll; "
                      f"{_wait_applied(devices)}.")
            case "rename":
                old = devices.find(args.id)
                d = devices.rename(old.id, args.name)
                print(f"Renamed {d.id}: \"{old.name}\" -> \"{d.name}\"; {_wait_applied(devices)}.")
            case "revoke":
                d = devices.revoke(devices.find(args.id).id)
                print(f"Revoked {d.id} \"{d.name}\": its broker login, tokens and settings are gone; "
                      f"{_wait_applied(devices)} (the device is disconnected and cannot log in again).")
            case "wyoming":
                _wyoming(args, WyomingAccess(store, devices.registry, settings.wyoming), devices)
        return 0
    finally:
        store.close()
