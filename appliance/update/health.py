"""Is Hearth healthy? What `hearth update confirm` waits for before the new slot is marked good.

Healthy means all of: the service answers on its local control channel (service up), its
`/health` says ok with the broker connected and an STT engine and a voice loaded (engines load
before the web server starts, so an answer means they are in memory), and the web page itself
answers (`GET /login`, the page every browser reaches first).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from appliance.process import control
from appliance.state.config import Settings


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str              # why not, in a few words ("" when ok)


def base_url(settings: Settings) -> str:
    host = settings.web.bind
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def check(settings: Settings, timeout_s: float = 5.0) -> Health:
    try:
        control.ask(settings.data_dir, "update.ping", timeout_s=timeout_s)
    except control.ControlError as exc:
        return Health(False, f"the service does not answer on its control channel ({exc})")
    base = base_url(settings)
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as reply:
            doc = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return Health(False, f"{base}/health answered {exc.code}")
    except (OSError, ValueError) as exc:
        return Health(False, f"{base}/health does not answer ({exc})")
    if not doc.get("broker"):
        return Health(False, "the service is not connected to the broker")
    if not doc.get("stt") or not doc.get("tts"):
        return Health(False, "the engines are not loaded")
    if not doc.get("ok"):
        return Health(False, "; ".join(doc.get("reasons") or ["/health is not ok"]))
    try:
        with urllib.request.urlopen(f"{base}/login", timeout=timeout_s) as reply:
            if reply.status != 200:
                return Health(False, f"the web page answered {reply.status}")
    except (OSError, urllib.error.HTTPError) as exc:
        return Health(False, f"the web page does not answer ({exc})")
    return Health(True, "")


def wait(settings: Settings, timeout_s: float, poll_s: float = 2.0) -> Health:
    """The first healthy check within `timeout_s`, else the last reason it was not."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = check(settings, timeout_s=min(5.0, max(0.5, deadline - time.monotonic())))
        if health.ok or time.monotonic() + poll_s > deadline:
            return health
        time.sleep(poll_s)
