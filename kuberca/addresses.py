"""Who is calling: the client address behind the proxies kuberca trusts (SPEC §10).

The webhook records and rate-limits by it, the login throttle counts by it.
X-Forwarded-For is believed only from TRUSTED_PROXIES, read right to left, so
a client cannot choose its own address by sending the header itself.
"""

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest


@cache
def _trusted_networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # Settings refuse an entry that is not an address or network (env_networks).
    return tuple(ipaddress.ip_network(item, strict=False) for item in proxies)


def _is_trusted(address: str) -> bool:
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # On a dual-stack socket (HOST=::) an IPv4 proxy connects as ::ffff:a.b.c.d.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    ips = (ip,) if mapped is None else (ip, mapped)
    return any(one in network for one in ips for network in networks)


def client_address(request: HttpRequest) -> str | None:
    """The caller's address; X-Forwarded-For only when sent by a trusted proxy.

    Walks X-Forwarded-For from the right past trusted proxies, so a client
    cannot spoof its address by sending the header itself.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    if not remote or not settings.TRUSTED_PROXIES or not _is_trusted(remote):
        return _valid_ip(remote)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [_without_port(h.strip()) for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return _valid_ip(hop) or _valid_ip(remote)
    return _valid_ip(hops[0]) if hops else _valid_ip(remote)


def _without_port(hop: str) -> str:
    # Some proxies (Azure Application Gateway) write a hop with the port it
    # came from: a.b.c.d:port, [v6]:port. A bare IPv6 address has two colons.
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        return None
    # An IPv6 zone (fe80::1%eth0) is no part of an inet column's value.
    return address.partition("%")[0]
