"""The client's address, as the per-address rules need it (failed logins, sign-ups,
sockets): behind a load balancer every request comes from the balancer's address.

X-Forwarded-For and Forwarded (RFC 7239) are believed only when the request comes
from a trusted proxy (COURIER_TRUSTED_PROXIES): each proxy appends the address it
got the request from, so the list is read from the right, past the trusted proxies,
and the first address that is not one of them is the client's. What lies left of it
was written by the client itself and is never believed. A header that cannot be read
there leaves the last proxy's own address as the client's."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from tornado.httputil import HTTPHeaders

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# for=<node> in a Forwarded element: a token, or a quoted string ("[2001:db8::1]:80").
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for=("[^"]*"|[^;,\s]*)', re.IGNORECASE)


class ClientAddresses:
    def __init__(self, trusted: Sequence[Network]):
        self._trusted = tuple(trusted)
        # None trusted: every request's client is its socket's peer, as Tornado has it.
        self.trusts_proxies = bool(self._trusted)

    def of(self, peer: str, headers: HTTPHeaders) -> str:
        """The client's address of a request that came from `peer`."""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = _forwarded_for(headers)
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # unreadable: believe nothing further left
            client = address
            if not self._is_trusted(address):
                break
        return client

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def _forwarded_for(headers: HTTPHeaders) -> list[str]:
    """The hops, oldest first: Forwarded's for= values when it is there, else X-Forwarded-For."""
    forwarded = headers.get_list("Forwarded")
    if forwarded:
        hops = []
        for line in forwarded:
            for element in line.split(","):
                match = _FORWARDED_FOR.search(element)
                hops.append(match.group(1) if match else "")
        return hops
    return [hop.strip() for line in headers.get_list("X-Forwarded-For") for hop in line.split(",")]


def _address(hop: str) -> str | None:
    """An IP address out of one hop ("192.0.2.1", "192.0.2.1:4711", "\\"[2001:db8::1]:80\\""),
    in its canonical spelling; None when it is none (RFC 7239's "unknown" and obfuscated ids)."""
    hop = hop.strip().strip('"')
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]  # IPv4 with a port
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None
