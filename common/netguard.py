"""SSRF guard for URLs that admins type in (token, authorization, API URLs).

Only https to public hosts: no loopback, private, link-local (cloud metadata
lives there), multicast, reserved or unspecified addresses, whether given as
an IP literal or as a name that resolves to one. An IPv6 address that leads
to an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) must lead to a public
one; IPv4-compatible, IPv4-translated, local-use NAT64 and the deprecated
site-local fec0::/10 addresses are refused. ``OAUTH_ALLOW_INSECURE_URLS``
lifts the rule for development and tests. The same check runs again right
before each outgoing request (``assert_public_url``), so a name that later
resolves somewhere private is still refused.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}


class UnsafeURLError(ValueError):
    pass


def _insecure_allowed() -> bool:
    return bool(getattr(settings, "OAUTH_ALLOW_INSECURE_URLS", False))


# IPv6 ranges that carry (or stood for) something other than a public IPv6 host.
_REFUSED_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1 reaches 127.0.0.1 on some stacks
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): the IPv4 address sits where the operator chose
        "fec0::/10",  # site-local (deprecated), private in practice
    )
)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a 6to4 or Teredo address leads to."""
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return list(ip.teredo)  # the Teredo server and the client
    return []


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if not isinstance(ip, ipaddress.IPv6Address):
        return _is_public_ip(ip)
    if ip.ipv4_mapped:
        return _is_public_ip(ip.ipv4_mapped)  # the socket connects to the IPv4 address itself
    if ip in _NAT64_WELL_KNOWN:
        return _is_public_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))  # the gateway connects to it
    if any(ip in network for network in _REFUSED_V6):
        return False
    # A public-looking IPv6 prefix in front of 127.0.0.1 or 10.0.0.1 still ends there.
    return _is_public_ip(ip) and all(_is_public_ip(v4) for v4 in _embedded_ipv4(ip))


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def check_url(url: str, *, resolve: bool = True) -> str:
    """Return the URL if it is safe to call, else raise UnsafeURLError with a reason a person understands."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURLError("Enter a full URL starting with https://.")
    if parts.username or parts.password:
        raise UnsafeURLError("The URL must not contain a user name or password.")
    if _insecure_allowed():
        return url
    if parts.scheme != "https":
        raise UnsafeURLError("The URL must use https://.")
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise UnsafeURLError(f"“{host}” is not a public host.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public(host):
            raise UnsafeURLError(f"{host} is a private, loopback or link-local address; use a public host.")
        return url
    if resolve:
        private = [a for a in _resolve(host) if not _is_public(a)]
        if private:
            raise UnsafeURLError(
                f"“{host}” resolves to {private[0]}, a private, loopback or link-local address; use a public host."
            )
    return url


def assert_public_url(url: str) -> None:
    """Re-check right before an outgoing request (names can re-resolve)."""
    check_url(url, resolve=True)
