"""Who a client is, as far as fair shares go: its IPv4 address, or its IPv6 /64 (one host can
take any number of addresses in its own /64, so caps and throttles count the prefix)."""

from __future__ import annotations

import ipaddress


def peer_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
