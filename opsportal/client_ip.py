"""The address of the client behind the request, the one key every limiter and lockout shares.

`X-Forwarded-For` is anyone's to write, so it is read only when the deployment says which hops
wrote it, and only when the request came from one of those hops:

- `TRUSTED_PROXY_COUNT=N`: the last N entries were appended by our own proxies. Believed only
  when the socket peer (`REMOTE_ADDR`) is one of our proxies: inside `TRUSTED_PROXY_CIDRS`, or a
  loopback address (a proxy on the same host). A client that reaches
  the portal directly, around the proxy, is keyed by its own address whatever header it sends.
- `TRUSTED_PROXY_CIDRS` alone: walk the chain from the right, skipping our proxies' addresses.

With neither, the socket peer is the client and the header is ignored, so a forged header never
changes a limiter's key.
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


def _peer_is_our_proxy(peer, networks) -> bool:
    return peer.is_loopback or _trusted(peer, networks)


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
        if count:
            # Each of our N proxies appended the address it received the request from.
            if _peer_is_our_proxy(peer, networks) and len(forwarded) >= count:
                result = _parse(forwarded[-count]) or peer
        elif _trusted(peer, networks):
            # The rightmost address that is not one of our proxies is the client.
            for raw in reversed(forwarded):
                hop = _parse(raw)
                if hop is None:
                    break
                result = hop
                if not _trusted(hop, networks):
                    break
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
