"""How `hearth support bundle` reaches the running service: the local control channel
(appliance/process/control.py), action `support.bundle`. The service answers with the bundle it builds
with its live health, metrics, log and recent errors (web/support_routes.py registers the action
once the web app exists); no port, no token file, only the service's own user or root.
"""

from __future__ import annotations

import base64
from pathlib import Path

from appliance.process import control

ACTION = "support.bundle"


class ServiceRefused(RuntimeError):
    """The running service answered, but with an error: the message is its own."""


def fetch(data_dir: Path, timeout: float = 120.0) -> tuple[bytes | None, str]:
    """The bundle made by the running service, or (None, why no service answered).

    Raises ServiceRefused when a service answered with an error (then no offline bundle is made
    behind its back)."""
    try:
        reply = control.ask(data_dir, ACTION, timeout_s=timeout)
    except control.NoService:
        return None, "no service is running from this data directory"
    except control.ControlError as exc:
        if exc.code in ("unreachable", "service_stopped"):
            return None, f"the service does not answer on {control.socket_path(data_dir)} ({exc})"
        raise ServiceRefused(f"the running Hearth answered {exc.code}: {exc}") from None
    return base64.b64decode(reply["bundle"]), ""


def serve(service, build) -> None:
    """The service's end: `build()` -> bytes, offered on the control channel."""
    service.control.register(ACTION, lambda _params: {"bundle": base64.b64encode(build()).decode()})
