"""The SSRF guard sees through IPv6 forms that lead to private IPv4 addresses."""

import socket
from unittest import mock

import pytest

from common.netguard import UnsafeURLError, check_url


@pytest.fixture(autouse=True)
def production_rules(settings):
    settings.OAUTH_ALLOW_INSECURE_URLS = False


REFUSED_LITERALS = [
    ("6to4 of 127.0.0.1", "2002:7f00:1::"),
    ("6to4 of 10.0.0.1", "2002:a00:1::1"),
    ("6to4 of 169.254.169.254", "2002:a9fe:a9fe::"),
    ("site-local", "fec0::1"),
    ("site-local, upper end", "feff:ffff::1"),
    ("IPv4-mapped 127.0.0.1", "::ffff:127.0.0.1"),
    ("IPv4-mapped metadata", "::ffff:169.254.169.254"),
    ("IPv4-compatible 127.0.0.1", "::127.0.0.1"),
    ("IPv4-compatible public", "::8.8.8.8"),
    ("IPv4-translated 127.0.0.1", "::ffff:0:127.0.0.1"),
    ("NAT64 of 127.0.0.1", "64:ff9b::7f00:1"),
    ("NAT64 of 192.168.1.1", "64:ff9b::c0a8:101"),
    ("local-use NAT64", "64:ff9b:1::a00:1"),
    ("Teredo with a private client", "2001:0:4136:e378:8000:63bf:f5ff:fffe"),
    ("loopback", "::1"),
    ("unique local", "fd00::1"),
    ("link-local", "fe80::1"),
]


@pytest.mark.parametrize(("what", "address"), REFUSED_LITERALS, ids=[w for w, _ in REFUSED_LITERALS])
def test_an_ipv6_literal_that_leads_somewhere_private_is_refused(what, address):
    with pytest.raises(UnsafeURLError, match="private, loopback or link-local"):
        check_url(f"https://[{address}]/oauth/token")


@pytest.mark.parametrize(("what", "address"), REFUSED_LITERALS, ids=[w for w, _ in REFUSED_LITERALS])
def test_a_name_that_resolves_to_such_an_address_is_refused(what, address):
    answer = [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0, 0, 0))]
    with (
        mock.patch("common.netguard.socket.getaddrinfo", return_value=answer),
        pytest.raises(UnsafeURLError, match=f"resolves to {address}"),
    ):
        check_url("https://login.example.com/oauth/token")


@pytest.mark.parametrize(
    "address",
    [
        "2606:4700:4700::1111",  # a public IPv6 host
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "::ffff:8.8.8.8",  # IPv4-mapped 8.8.8.8
    ],
)
def test_public_ipv6_and_forms_of_public_ipv4_pass(address):
    url = f"https://[{address}]/oauth/token"
    assert check_url(url) == url
