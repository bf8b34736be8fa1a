"""SSRF guard for URLs that admins type in (token, authorization, API URLs).

Only https to public hosts: no loopback, private, link-local (cloud metadata
lives there), multicast, reserved or unspecified addresses, whether given as
an IP literal or as a name that resolves to one. ``OAUTH_ALLOW_INSECURE_URLS``
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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


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
