"""`hearth support bundle [--out FILE]`: one archive to send to whoever helps.

Asks the running Hearth for it (appliance/support/channel.py): the service has the live health,
metrics, log and recent errors. When no service runs from this data directory, builds what it can
from the data directory alone and says so, in its output and inside the bundle.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from appliance.state.config import Settings
from appliance.support import bundle, channel

COMMAND = "support"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(COMMAND, help="what a helper needs to troubleshoot this Hearth")
    sub = p.add_subparsers(dest="support_command", required=True, metavar="ACTION")
    b = sub.add_parser("bundle", help="write one .tar.gz with versions, config, health, logs, devices (no secrets)")
    b.add_argument("--out", help="file to write (default: hearth-support-<date>-<time>.tar.gz in this folder)")


def run(args, settings: Settings) -> int:
    data, why = channel.fetch(settings.data_dir)
    if data is None:
        data = bundle.build(settings, None, note=why)
    out = Path(args.out or time.strftime(bundle.NAME))
    tmp = out.with_name(out.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, out)
    how = "by the running Hearth" if not why else f"from the data directory alone ({why})"
    print(f"wrote {out} ({len(data) / 1024:.0f} KB), made {how}; it holds no passwords, tokens, keys "
          "or stored utterances: send it to whoever helps you")
    return 0
