"""Where Courier's Redis is: COURIER_REDIS_URL (and COURIER_REDIS_CLUSTER) read into one
Redis or the startup nodes of a Redis Cluster (issue 19).

A cluster is named by `redis+cluster://` (`rediss+cluster://` for TLS), or by a plain URL
with COURIER_REDIS_CLUSTER=1. Its host part may list several nodes, comma-separated
(`redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000`): the client needs one that answers to
find the others, so listing a few keeps a start-up from hanging on one node being down.
redis-py reads one host per URL only, so the URL handed to it keeps the first node, for
the options the nodes share (user, password, TLS, query options)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    url: str  # what redis-py's from_url/parse_url reads: redis://, rediss:// or unix://
    cluster: bool
    nodes: tuple[tuple[str, int], ...] = ()  # a cluster's startup nodes, as given


def parse(url: str, cluster: bool = False) -> RedisAddress:
    """The address in `url`; ValueError (its message for an operator) when malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in CLUSTER_SCHEMES:
        cluster, scheme = True, CLUSTER_SCHEMES[scheme]
    elif scheme not in PLAIN_SCHEMES:
        shown = parts.scheme + "://" if parts.scheme else "a URL without a scheme"  # never the password
        raise ValueError(f"must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://, "
                         f"not {shown}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    listed = [host.strip() for host in hosts.split(",")]
    if not cluster:
        if len(listed) > 1:
            raise ValueError("lists several hosts, which only a Redis Cluster takes: "
                             "use redis+cluster:// (or set COURIER_REDIS_CLUSTER=1)")
        return RedisAddress(url, False)
    if scheme == "unix":
        raise ValueError("a Redis Cluster is reached over TCP, not a unix socket")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"names database {parts.path.strip('/')}, but a Redis Cluster has database 0 only")
    nodes = tuple(_node(host) for host in listed)
    rest = f"{userinfo}{at}{listed[0]}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return RedisAddress(f"{scheme}://{rest}", True, nodes)


def _node(host: str) -> tuple[str, int]:
    if not host:
        raise ValueError("has an empty host in its list of cluster nodes")
    node = urlsplit("//" + host)  # brackets around an IPv6 address, as in any URL
    try:
        port = node.port
    except ValueError:
        raise ValueError(f"has a node with a port that is not a number: {host!r}") from None
    if not node.hostname:
        raise ValueError(f"has a node without a host name: {host!r}")
    return node.hostname, port or DEFAULT_PORT
