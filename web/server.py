"""The HTTP server: waitress (multi-threaded) serving the bottle app on the appliance's web port,
behind the edge in web/edge.py (deadlines, connection caps, body limits chosen before the body)."""

from __future__ import annotations

import logging
import threading

from web import body_limits, edge
from web.app import build_app

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, service, app=None):
        self.service = service
        web = service.settings.web
        self.app = app or build_app(service)     # recovery mode brings its own (web/recovery_page.py)
        self.server = edge.create(self.app, web, body_limits.for_service(service, self.app))
        self.port = self.server.effective_port
        server, metrics = self.server, service.metrics
        metrics.gauge("hearth_http_connections_open", lambda: len(server.active_channels))
        metrics.gauge("hearth_http_connections_refused", lambda: server.refused)
        metrics.gauge("hearth_http_connections_evicted", lambda: server.evicted)
        metrics.gauge("hearth_http_connections_timed_out", lambda: server.timed_out)
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("web page on port %s", self.port)

    def stop(self) -> None:
        self.server.close()
        self._thread.join(timeout=5)
