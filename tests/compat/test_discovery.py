"""Discovery: Hearth's services can be browsed over mDNS (on loopback here)."""

from __future__ import annotations

import threading
import time

from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

from appliance.compat.discovery import TYPES, Advertiser, adverts


def test_every_service_is_found_by_browsing(compat_hearth):
    advertiser = Advertiser(adverts(compat_hearth.service), "127.0.0.1", instance="Hearth test",
                            interfaces=["127.0.0.1"])
    advertiser.start()
    browser_zc = Zeroconf(interfaces=["127.0.0.1"])
    found: dict[str, str] = {}
    lock = threading.Lock()

    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added and name.startswith("Hearth test"):
            with lock:
                found[service_type] = name

    try:
        ServiceBrowser(browser_zc, list(TYPES.values()), handlers=[changed])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(found) < len(TYPES):
            time.sleep(0.2)
        assert set(found) == set(TYPES.values()), found
        s = compat_hearth.settings
        want = {"_mqtt._tcp.local.": s.broker.port, "_http._tcp.local.": int(compat_hearth.service.web.port),
                "_hearth._tcp.local.": int(compat_hearth.service.web.port),
                "_wyoming._tcp.local.": compat_hearth.service.wyoming.port}
        for kind, name in found.items():
            info = browser_zc.get_service_info(kind, name, timeout=5000)
            assert info is not None and info.port == want[kind], (kind, info)
            assert info.parsed_addresses() == ["127.0.0.1"]
        hearth_info = browser_zc.get_service_info("_hearth._tcp.local.", found["_hearth._tcp.local."], timeout=5000)
        assert hearth_info.properties[b"mqtt_port"] == str(s.broker.port).encode()
    finally:
        browser_zc.close()
        advertiser.stop()
