"""The dedicated broker login for Hermes satellites, and switching Hermes compatibility on.

Hermes puts the siteId in the payload, so the broker cannot confine a Hermes satellite to its
own topics: every Hermes satellite shares one login whose ACL allows `hermes/#` (and nothing of
Hearth's own `hearth/...` device topics). The password lives in `<data>/secrets/hermes.json`
(mode 0600) and is shown only by `hearth hermes enable|show` and the web page.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from appliance.state.config import Settings, config_path, load
from mqtt.broker import Account, hash_password, new_password

HERMES_USER = "hermes-satellites"
WARNING = ("Hermes has no per-device identity: the siteId is inside each message, so any satellite "
           "with this login can speak for any site. Use it on a trusted LAN only.")


@dataclass(frozen=True)
class HermesLogin:
    username: str
    password: str
    password_hash: str

    def url(self, host: str, port: int) -> str:
        return f"mqtt://{quote(self.username)}:{quote(self.password, safe='')}@{host}:{port}"


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / "secrets" / "hermes.json"


def ensure_login(data_dir: Path) -> HermesLogin:
    """The Hermes login, created on first use."""
    path = _path(data_dir)
    try:
        data = json.loads(path.read_text())
        return HermesLogin(HERMES_USER, data["password"], data["hash"])
    except FileNotFoundError:
        pass
    password = new_password()
    login = HermesLogin(HERMES_USER, password, hash_password(password))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"password": login.password, "hash": login.password_hash}, fh)
    os.replace(tmp, path)
    return login


def broker_accounts(settings: Settings) -> list[Account]:
    """The account provider: the Hermes login exists on the broker only while the mode is on."""
    if not settings.hermes.enabled:
        return []
    login = ensure_login(settings.data_dir)
    return [Account(login.username, login.password_hash, "hermes", extra_readwrite=("hermes/#",))]


def advertised_url(settings: Settings, login: HermesLogin) -> str:
    from appliance.process.broker import lan_address
    host = settings.broker.advertise_host or lan_address(settings.broker.bind)
    return login.url(host, settings.broker.port)


def set_enabled(settings: Settings, enabled: bool, explicit_config: str | None = None) -> Settings:
    """Write `[hermes] enabled` into the config file (other lines and comments stay) and re-read it."""
    file = config_path(settings.data_dir, explicit_config)
    text = file.read_text() if file.exists() else ""
    value = "true" if enabled else "false"
    section = re.search(r"^\[hermes\][ \t]*$(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    if section is None:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[hermes]\nenabled = {value}\n"
    else:
        body = section.group(1)
        line = re.compile(r"^[ \t]*#?[ \t]*enabled[ \t]*=.*$", flags=re.M)
        new_body = line.sub(f"enabled = {value}", body, count=1) if line.search(body) else f"\nenabled = {value}" + body
        text = text[:section.start(1)] + new_body + text[section.end(1):]
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return load(file, settings.data_dir)
