"""The HTTP server: waitress (multi-threaded) serving the bottle app on the appliance's web port."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from web.app import build_app

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, service, app=None):
        self.service = service
        web = service.settings.web
        self.app = app or build_app(service)     # recovery mode brings its own (web/recovery_page.py)
        self.server = create_server(self.app, host=web.bind, port=web.port, threads=web.threads,
                                    ident="hearth", channel_timeout=60, clear_untrusted_proxy_headers=True)
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("web page on port %s", self.port)

    def stop(self) -> None:
        self.server.close()
        self._thread.join(timeout=5)
