"""The support bundle (appliance/support/) for the System page and for `hearth support bundle`.

    GET /api/system/support-bundle   signed in (the System page's button): the .tar.gz, never cached
    control action `support.bundle`  the command's way in (appliance/process/control.py: local socket only)
"""

from __future__ import annotations

import concurrent.futures
import io
import sys
from wsgiref.util import setup_testing_defaults

import bottle

from appliance.support import bundle, channel
from appliance.support.redact import SecretInBundle
from web.replies import json_error
from web.format import attachment
from web.overview import facts


def _get(app: bottle.Bottle, path: str) -> str:
    """What GET `path` answers a loopback client, asked of the app itself in a thread of its own
    (bottle's request and response are per thread: the request being served stays untouched)."""
    def call() -> str:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1",
                   "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
        return body.decode(errors="replace")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=30)


def live(app: bottle.Bottle, service) -> bundle.Live:
    firmware = getattr(service, "firmware", None)
    return bundle.Live(health=_get(app, "/health"), metrics=_get(app, "/metrics"), overview=facts(service),
                       logs=service.logs.recent(500, "DEBUG"), errors=list(service.metrics.recent_errors),
                       firmware=firmware.status() if firmware else None,
                       extra={"watchdog_healthy": service.healthy()})


def install(app: bottle.Bottle, service) -> None:
    def build() -> bytes:
        return bundle.build(service.settings, live(app, service))

    if getattr(service, "control", None) is not None:
        channel.serve(service, build)

    @app.get("/api/system/support-bundle")
    def signed_in_download():
        try:
            data = build()
        except SecretInBundle as exc:
            return json_error(500, "secret_in_bundle", str(exc))
        return attachment(data, "application/gzip", bundle.NAME)
