"""The client's address behind trusted proxies (entrypoints/http/client_address.py)."""
from __future__ import annotations

import ipaddress

import pytest
from tornado.httputil import HTTPHeaders

from entrypoints.http.client_address import ClientAddresses

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"),
           ipaddress.ip_network("2001:db8:ffff::/48")]


def headers(**values) -> HTTPHeaders:
    result = HTTPHeaders()
    for name, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            result.add(name.replace("_", "-"), one)
    return result


def test_without_trusted_proxies_the_headers_are_ignored():
    assert ClientAddresses([]).of("127.0.0.1", headers(X_Forwarded_For="203.0.113.9")) == "127.0.0.1"


def test_from_an_untrusted_peer_the_headers_are_ignored():
    addresses = ClientAddresses(PROXIES)
    assert addresses.of("198.51.100.1", headers(X_Forwarded_For="203.0.113.9")) == "198.51.100.1"


@pytest.mark.parametrize(("chain", "client"), [
    ("203.0.113.9", "203.0.113.9"),
    ("203.0.113.9, 10.1.1.1", "203.0.113.9"),  # two proxies
    ("6.6.6.6, 203.0.113.9, 10.1.1.1", "203.0.113.9"),  # the client's own claim is left of it
    ("10.2.2.2, 10.1.1.1", "10.2.2.2"),  # everyone trusted: the leftmost
    ("garbage, 203.0.113.9", "203.0.113.9"),
    ("203.0.113.9, garbage", "127.0.0.1"),  # unreadable right of the client: the proxy's own view
    ("", "127.0.0.1"),
    ("203.0.113.9:4711", "203.0.113.9"),
    ("2001:DB8::5", "2001:db8::5"),
])
def test_the_rightmost_untrusted_address_is_the_clients(chain, client):
    assert ClientAddresses(PROXIES).of("127.0.0.1", headers(X_Forwarded_For=chain)) == client


def test_several_x_forwarded_for_lines_are_one_list():
    chain = headers(X_Forwarded_For=["6.6.6.6", "203.0.113.9, 10.1.1.1"])
    assert ClientAddresses(PROXIES).of("127.0.0.1", chain) == "203.0.113.9"


@pytest.mark.parametrize(("forwarded", "client"), [
    ("for=203.0.113.9", "203.0.113.9"),
    ('for="[2001:db8::1]:4711";proto=https', "2001:db8::1"),
    ("for=6.6.6.6, for=203.0.113.9;by=10.0.0.1, for=10.1.1.1", "203.0.113.9"),
    ("For=203.0.113.9", "203.0.113.9"),
    ("for=unknown", "127.0.0.1"),
    ("for=_hidden, for=203.0.113.9", "203.0.113.9"),
    ("proto=https", "127.0.0.1"),
])
def test_forwarded_is_read_like_x_forwarded_for(forwarded, client):
    assert ClientAddresses(PROXIES).of("127.0.0.1", headers(Forwarded=forwarded)) == client


def test_forwarded_wins_over_x_forwarded_for():
    both = headers(Forwarded="for=203.0.113.9", X_Forwarded_For="198.51.100.1")
    assert ClientAddresses(PROXIES).of("127.0.0.1", both) == "203.0.113.9"


def test_an_ipv6_proxy_network():
    assert ClientAddresses(PROXIES).of("2001:db8:ffff::2", headers(X_Forwarded_For="203.0.113.9")) == "203.0.113.9"
