"""Which client a network address belongs to, for per-client limits: IPv4 addresses whole
(/32 by default) and IPv6 ones by their /64 prefix, since one host holds a whole /64 and
could otherwise take a fresh budget, or a fresh share of the connections, per address."""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=65536)  # per request or connection: parse each address once
def client_key(address: str, *, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str:
    """The client an address counts against: its network under the prefix length (IPv4
    addresses mapped into IPv6 count as IPv4; an address that does not parse, such as a Unix
    socket's, is its own client)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))
