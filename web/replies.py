"""The web edge's error replies: every failure a route or plugin turns into HTTP is shaped here, once
(a JSON body with `error` and `message`; a full data disk is 507)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import sqlite3

import bottle

from appliance.state import storage


def json_error(status: int, code: str, message: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(status=status, body=json.dumps({"error": code, "message": message}),
                               headers={"Content-Type": "application/json"})


def metrics_allowed(environ: dict, token: str) -> bool:
    """Loopback peers always; others only with `Authorization: Bearer <[web] metrics_token>`."""
    try:
        if ipaddress.ip_address(environ.get("REMOTE_ADDR", "")).is_loopback:
            return True
    except ValueError:
        pass
    auth = environ.get("HTTP_AUTHORIZATION", "")
    return bool(token) and auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode())


def disk_full_replies(data_dir):
    """A bottle plugin: a write that found the data disk full (or under the reserve) answers 507."""
    def plugin(callback):
        def wrapper(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except (OSError, sqlite3.Error) as exc:
                if not storage.no_space(exc):
                    raise
                err = exc if isinstance(exc, storage.StorageError) else storage.disk_full(data_dir)
                return json_error(507, err.code, str(err))
        return wrapper
    return plugin
