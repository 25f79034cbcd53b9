"""The address of the client behind the request, the one key every limiter and lockout shares.

`X-Forwarded-For` is anyone's to write, so it is read only when the deployment says which hops
wrote it: `TRUSTED_PROXY_COUNT=N` (the last N entries were appended by our own proxies) or
`TRUSTED_PROXY_CIDRS` (walk the chain from the right, skipping our proxies' addresses). With
neither, the socket peer (`REMOTE_ADDR`) is the client and the header is ignored, so a forged
header never changes a limiter's key.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

UNKNOWN = "0.0.0.0"  # noqa: S104 - a placeholder key, never bound to


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address, networks) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str:
    """The client's address as the trusted proxies saw it; REMOTE_ADDR when no proxy is trusted."""
    cached = getattr(request, "_opsportal_client_ip", None)
    if cached:
        return cached
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    result = peer
    count = settings.TRUSTED_PROXY_COUNT
    networks = settings.TRUSTED_PROXY_CIDRS
    if peer is not None and (count or networks):
        forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if networks:
            if _trusted(peer, networks):
                # The rightmost address that is not one of our proxies is the client.
                for raw in reversed(forwarded):
                    hop = _parse(raw)
                    if hop is None:
                        break
                    result = hop
                    if not _trusted(hop, networks):
                        break
        elif len(forwarded) >= count:
            # Each of our N proxies appended the address it received the request from.
            result = _parse(forwarded[-count]) or peer
    value = str(result) if result is not None else UNKNOWN
    request._opsportal_client_ip = value
    return value


def client_key(request: HttpRequest) -> str:
    """client_ip() for limiters: an IPv6 client is keyed by its /64, which one holder controls whole."""
    address = ipaddress.ip_address(client_ip(request))
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)


def ratelimit_key(group: str, request: HttpRequest) -> str:
    """django-ratelimit's key signature."""
    return client_key(request)
