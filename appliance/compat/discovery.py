"""Zero-configuration discovery: Hearth advertises itself on the LAN over mDNS/DNS-SD.

    _mqtt._tcp      the broker (devices and Hermes satellites)
    _http._tcp      the web page
    _wyoming._tcp   the Wyoming server (Home Assistant discovers it by this)
    _hearth._tcp    Hearth's own pairing API (what a Hearth device looks for)

On the appliance avahi-daemon advertises these from /etc/avahi/services/hearth.service, so the
service stays quiet when that file exists; in a checkout (`./build.sh run`) python-zeroconf does it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil
from zeroconf import InterfaceChoice, ServiceInfo, Zeroconf

log = logging.getLogger(__name__)
AVAHI_FILE = Path("/etc/avahi/services/hearth.service")
TYPES = {"mqtt": "_mqtt._tcp.local.", "http": "_http._tcp.local.", "wyoming": "_wyoming._tcp.local.",
         "hearth": "_hearth._tcp.local."}


@dataclass(frozen=True)
class Advert:
    kind: str                 # a key of TYPES
    port: int
    properties: dict


def addresses(bind: str) -> list[str]:
    """The IPv4 addresses to announce for a listener bound to `bind`."""
    if bind not in ("0.0.0.0", "", "::"):
        return [bind]
    found = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
             if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback]
    return sorted(set(found)) or ["127.0.0.1"]


def adverts(service) -> list[Advert]:
    from appliance.version import VERSION
    s = service.settings
    web_port = int(service.web.port) if getattr(service, "web", None) else s.web.port   # waitress gives a str
    out = [
        Advert("mqtt", s.broker.port, {"tls_port": str(s.broker.tls_port), "version": VERSION}),
        Advert("http", web_port, {"path": "/"}),
        Advert("hearth", web_port, {"version": VERSION, "mqtt_port": str(s.broker.port), "path": "/"}),
    ]
    wyoming = getattr(service, "wyoming", None)
    if wyoming is not None:
        out.append(Advert("wyoming", wyoming.port, {}))
    return out


class Advertiser:
    def __init__(self, adverts_: list[Advert], bind: str, instance: str | None = None, interfaces=InterfaceChoice.All):
        host = socket.gethostname().split(".")[0] or "hearth"
        self.instance = instance or f"Hearth on {host}"
        self.server = f"hearth-{host}.local."
        self.addresses = [socket.inet_aton(a) for a in addresses(bind)]
        self.adverts = adverts_
        self.interfaces = interfaces
        self.zc: Zeroconf | None = None
        self.infos: list[ServiceInfo] = []
        self._thread: threading.Thread | None = None

    def info(self, advert: Advert) -> ServiceInfo:
        kind = TYPES[advert.kind]
        return ServiceInfo(kind, f"{self.instance}.{kind}", port=advert.port, properties=advert.properties,
                           server=self.server, addresses=self.addresses)

    def start(self) -> None:
        """Register in the background: mDNS probing takes a few seconds and must not delay start-up."""
        self.zc = Zeroconf(interfaces=self.interfaces)
        self._thread = threading.Thread(target=self._register, name="discovery", daemon=True)
        self._thread.start()

    def _register(self) -> None:
        for advert in self.adverts:
            info = self.info(advert)
            try:
                self.zc.register_service(info, allow_name_change=True)
                self.infos.append(info)
            except Exception as exc:           # one failed type must not stop the others
                log.warning("could not advertise %s: %s", info.type, exc)
        log.info("advertised %s over mDNS", ", ".join(i.type for i in self.infos))

    def stop(self) -> None:
        if self.zc is None:
            return
        if self._thread:
            self._thread.join(timeout=15)
        try:
            self.zc.unregister_all_services()
        finally:
            self.zc.close()
            self.zc = None


def install(service) -> None:
    if not service.settings.discovery.enabled:
        return
    if AVAHI_FILE.exists():
        log.info("avahi advertises Hearth (%s)", AVAHI_FILE)
        return

    def start() -> None:
        advertiser = Advertiser(adverts(service), service.settings.broker.bind)
        advertiser.start()
        service.discovery = advertiser
        service._stoppers.insert(0, advertiser.stop)
    service.after_start.append(start)
