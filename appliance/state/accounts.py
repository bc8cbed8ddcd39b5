"""Hearth's own broker logins: the service account and the local command-line client.

Kept in `<data>/secrets/accounts.json` (mode 0600, never logged). Device logins live in the
device registry; the broker's password file and ACL are written from both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from appliance.state.storage import atomic_write
from mqtt.broker import READER_USER, SERVICE_USER, Account, hash_password, new_password

CLI_USER = "hearth-cli"


@dataclass(frozen=True)
class Login:
    username: str
    password: str


class LocalAccounts:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "secrets" / "accounts.json"

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def ensure(self) -> dict:
        data = self._read()
        changed = False
        for user, kind in ((SERVICE_USER, "service"), (READER_USER, "reader"), (CLI_USER, "client")):
            if user not in data:
                pw = new_password()
                data[user] = {"password": pw, "hash": hash_password(pw), "kind": kind}
                changed = True
        if changed:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, json.dumps(data, indent=1), self.path.parent.parent, mode=0o600)
        return data

    def login(self, user: str) -> Login:
        data = self._read()
        if user not in data:
            raise FileNotFoundError(f"no local account '{user}' in {self.path}: run 'hearth setup' or './build.sh run' first")
        return Login(user, data[user]["password"])

    def broker_accounts(self) -> list[Account]:
        return [Account(user, entry["hash"], entry["kind"]) for user, entry in self.ensure().items()]
