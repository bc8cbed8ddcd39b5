"""`hearth helper join http://BOX:8080`: pair this machine with a box, as a device pairs.

The helper asks the box's device API for a code (type `helper`), shows it, and polls until a
person confirms it on the box (Devices page or `hearth devices pair CODE`). The box then hands
over a broker login of its own; it is kept in `<data>/secrets/helper.json` (0600). Nothing else
is needed to run: `hearth helper run` reads it.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from appliance.state.storage import atomic_write
from mqtt.client import Credentials
from mqtt.jobs import HELPER_TYPE


class JoinError(RuntimeError):
    """Pairing with the box failed; the message says what to do."""


def credentials_path(data_dir: Path) -> Path:
    return Path(data_dir) / "secrets" / "helper.json"


def load_credentials(data_dir: Path) -> Credentials:
    path = credentials_path(data_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise JoinError(f"this machine has not joined a box yet ({path} is missing): run "
                        "'hearth helper join http://BOX:8080' first") from None
    except (OSError, ValueError) as exc:
        raise JoinError(f"{path} is unreadable ({exc}): join the box again") from None
    ca_file = ""
    if data.get("ca_cert") and data.get("tls_port"):
        ca_file = str(path.with_name("helper-ca.pem"))
    port = data["tls_port"] if ca_file else data["port"]
    return Credentials(data["host"], int(port), data["username"], data["password"], ca_file)


def _call(url: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise JoinError(f"cannot reach the box at {url.split('/v1/')[0]}: {getattr(exc, 'reason', exc)}") from None


def _message(body: bytes) -> str:
    try:
        return json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:200]


def join(box: str, data_dir: Path, name: str = "", say: Callable[[str], None] = print,
         poll_s: float = 3.0, timeout_s: float = 600.0) -> Path:
    """Pair with the box at `box` (its web address); returns the credentials file."""
    box = box.rstrip("/")
    if not box.startswith(("http://", "https://")):
        raise JoinError(f"'{box}' is not the box's web address: use http://BOX:8080")
    state = secrets.token_hex(8)
    query = urllib.parse.urlencode({"state": state, "type": HELPER_TYPE, "platform": socket.gethostname()[:64],
                                    "name": name or f"helper {socket.gethostname()}"[:64]})
    status, body = _call(f"{box}/v1/device/code?{query}")
    if status != 200:
        raise JoinError(f"the box refused a pairing code ({status}): {_message(body)}")
    code = json.loads(body)
    say(f"Confirm code {code['code']} on the box: its Devices page, or 'hearth devices pair {code['code']}' there.")
    deadline = time.monotonic() + min(timeout_s, float(code.get("expiration") or timeout_s))
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        status, body = _call(f"{box}/v1/device/activate", {"state": state, "token": code["token"]})
        if status == 200:
            break
        if status == 401:
            continue                          # nobody has confirmed yet
        if status == 429:
            time.sleep(poll_s * 3)            # polled too often: the box's rate limit
            continue
        raise JoinError(f"the box refused the pairing ({status}): {_message(body)}")
    else:
        raise JoinError("nobody confirmed the code in time: run 'hearth helper join' again")
    mqtt = json.loads(body)["mqtt"]
    path = credentials_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {"box": box, "id": mqtt["username"], "host": mqtt["host"], "port": mqtt["port"],
              "tls_port": mqtt.get("tls_port") or 0, "username": mqtt["username"], "password": mqtt["password"],
              "ca_cert": mqtt.get("ca_cert") or ""}
    if record["ca_cert"]:
        atomic_write(path.with_name("helper-ca.pem"), record["ca_cert"], path.parent, mode=0o600)
    atomic_write(path, json.dumps(record, indent=1), path.parent, mode=0o600)
    say(f"Joined {box} as helper {record['id']}. Start lending: hearth helper run")
    return path
