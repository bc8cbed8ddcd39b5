"""How `hearth support bundle` reaches the running service: a loopback HTTP request to the
service's web port, `GET /local/support-bundle` with `Authorization: Bearer <token>`.

The service writes `<data>/secrets/support.json` (mode 0600: port, host and a random token made
at each start) once its web server listens, and removes it when it stops. Reading the file needs
the data directory's owner (or root), so whoever may read the secrets may ask for a bundle.
`fetch()` is the whole client side, kept in one function so a generic control channel can take
its place.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

ROUTE = "/local/support-bundle"


class ServiceRefused(RuntimeError):
    """The running service answered, but with an error: the message is its own."""


def channel_file(data_dir: Path) -> Path:
    return Path(data_dir) / "secrets" / "support.json"


def loopback_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "", "::") else bind


def write(data_dir: Path, host: str, port: int, token: str) -> None:
    path = channel_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"host": host, "port": port, "token": token, "pid": os.getpid()}, fh)
    os.replace(tmp, path)


def remove(data_dir: Path, token: str) -> None:
    """Remove the file if it is still ours (a newer service may have written its own)."""
    path = channel_file(data_dir)
    try:
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()
    except (OSError, ValueError):
        pass


def allowed(environ: dict, token: str, bind: str) -> bool:
    """The request carries the token and comes from this machine (loopback, or the bind address)."""
    peer = environ.get("REMOTE_ADDR", "")
    try:
        local = ipaddress.ip_address(peer).is_loopback or peer == bind
    except ValueError:
        local = False
    auth = environ.get("HTTP_AUTHORIZATION", "")
    return local and bool(token) and auth.startswith("Bearer ") and \
        hmac.compare_digest(auth[7:].strip().encode(), token.encode())


def fetch(data_dir: Path, timeout: float = 120.0) -> tuple[bytes | None, str]:
    """The bundle made by the running service, or (None, why no service answered).

    Raises ServiceRefused when a service answered with an error (then no offline bundle is made
    behind its back)."""
    try:
        info = json.loads(channel_file(data_dir).read_text())
        url = f"http://{info['host']}:{int(info['port'])}{ROUTE}"
        token = str(info["token"])
    except FileNotFoundError:
        return None, "no service is running from this data directory"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{channel_file(data_dir)} is unreadable ({exc})"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.read(), ""
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except ValueError:
            message = ""
        raise ServiceRefused(f"the running Hearth answered {exc.code}: {message or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"the service recorded in {channel_file(data_dir).name} does not answer at {url} ({reason})"


def install(service) -> None:
    """ROOMS hook: a token for this run; the file is written once the web server listens."""
    token = secrets.token_urlsafe(32)
    service.support_token = token
    data_dir = service.settings.data_dir
    service.after_start.append(
        lambda: write(data_dir, loopback_host(service.settings.web.bind), service.web.port, token))
    service._stoppers.append(lambda: remove(data_dir, token))
