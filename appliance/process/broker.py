"""The broker as Hearth runs it: Mosquitto's configuration from the settings, the address people and
devices are told, and the child that dies with Hearth."""

from __future__ import annotations

import ctypes
import signal

import psutil

from appliance.state.config import Settings
from mqtt.broker import BrokerConfig


def broker_config(settings: Settings) -> BrokerConfig:
    tls = None
    if settings.broker.tls_port:        # Hearth's own CA and the broker's certificate, made on first start
        from appliance.devices import ca
        tls = ca.ensure(settings.data_dir / "tls", ca.local_names(settings.broker.advertise_host)).as_tuple()
    return BrokerConfig(directory=settings.data_dir / "broker", bind=settings.broker.bind,
                        port=settings.broker.port, tls_port=settings.broker.tls_port, tls_files=tls,
                        max_packet_bytes=max(1 << 20, settings.limits.max_frame_bytes * 2),
                        max_connections=settings.broker.max_connections,
                        username_client_ids=not settings.hermes.enabled)


def lan_address(bind: str) -> str:
    """The address to print for people and devices: the bind address, or this machine's LAN IPv4."""
    if bind not in ("0.0.0.0", "", "::"):
        return bind
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        if name == "lo":
            continue
        for a in addrs:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return a.address
    return "127.0.0.1"


def die_with_parent() -> None:
    """Run in the broker child before exec: it gets SIGTERM if Hearth dies, even by kill -9."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
