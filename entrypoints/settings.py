"""Settings: COURIER_* environment variables, or flags of the same name
(`--port 9000`, `--database-url ...`, `--database_url ...`). Flags win."""
from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

from adapters.private_files import create_private_file, make_private_dir
from adapters.redis import address
from adapters.redis.buckets import DEFAULT_BUCKETS, SLOTS
from adapters.sql.database import is_sqlite

EMBEDDED, PRODUCTION = "embedded", "production"
SINGLE, CLUSTER = "single", "cluster"  # where production keeps its Redis data (Settings.redis_topology)


class SettingsError(Exception):
    """A setting is missing or malformed; the message says which and why."""


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = ""  # empty: a SQLite file in data_dir
    redis_url: str = ""  # empty: the embedded in-process adapters
    # 1: redis_url is a node of a Redis Cluster (as a redis+cluster:// URL says by itself).
    # README, "On a Redis Cluster"; docs/design/redis-cluster.md.
    redis_cluster: int = 0
    # Users' buckets on Redis (docs/design/redis-cluster.md, section 2). Key names carry
    # the bucket, so the number is fixed once a deployment has data: the first gateway or
    # worker stores it in Redis and a later one started with another refuses to run.
    redis_buckets: int = DEFAULT_BUCKETS
    # Replicas that must acknowledge a send's writes (WAIT) before its 201; 0: none (Redis
    # replicates asynchronously, and a failover may lose what a master took just before).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000  # then the send answers 503 (the client retries it)
    jwt_secret: str = ""
    token_ttl: int = 86400
    max_content_length: int = 4000
    edit_window: int = 48 * 3600  # seconds after sending that its sender may edit a message
    # Groups of at most this many members get read receipts as events; less than
    # large_group while large groups are on (a large group gets none).
    receipts_max_group: int = 100
    # A group with more members keeps one stream of its own instead of a copy of each
    # message in every member's log (docs/design/large-groups.md); 0: off, every group
    # fans out. A deployment upgraded from a version without large groups keeps 0 until
    # every gateway and worker runs one that knows them.
    large_group: int = 200
    presence_grace: float = 10.0  # seconds a user stays online after its last socket closed
    allowed_origins: str = ""  # empty: any origin
    log_level: str = "info"
    log_file: str = ""
    send_rate: float = 20.0
    login_failures: int = 10
    # Groups created plus members added, per acting user and minute (bursts of as many);
    # 0: no limit. A person adds members by typing names: 30 at once, then one every
    # 2 s, is more than anyone clicks, and bounds what a script can do to others.
    group_changes: int = 30
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    inbox_maxlen: int = 10000
    data_dir: str = "data"
    ws_max_message_size: int = 65536
    ws_write_buffer: int = 4 * 1024 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0  # at most the interval (checked below); 0: no timeout
    db_pool_size: int = 8
    worker_batch: int = 500
    event_loop: str = "uvloop"  # or "asyncio"; uvloop only when it is installed
    # 1: bind the port with SO_REUSEPORT, so several `courier serve` processes (production
    # mode) share one port and the kernel spreads connections among them.
    reuse_port: int = 0
    worker_claim_idle: float = 30.0  # seconds an entry stays pending before another worker claims it
    # seconds a worker may wait to fill a batch it found less than full (it looks every 0.05 s,
    # and stops at the first look that finds nothing new)
    worker_linger: float = 0.2
    # seconds of stored messages whose conversation-list rows a worker writes together (one
    # row per conversation however many of its messages came; acked then); 0: with each batch
    worker_list_window: float = 1.0
    # Addresses or networks (comma-separated) of the proxies in front of the gateways:
    # X-Forwarded-For and Forwarded are believed only from them. Empty: never believed.
    trusted_proxies: str = ""
    login_address_failures: int = 100  # failed logins per minute per client address, any username
    registrations: int = 30  # sign-ups per hour per client address; 0: no limit
    hash_threads: int = 2  # threads hashing passwords
    hash_queue: int = 8  # hashes waiting for a thread; one more is answered 503 at once
    ws_max_per_user: int = 20  # open WebSockets per user (every gateway together); 0: no cap
    ws_max_per_address: int = 2000  # open WebSockets per client address on one gateway; 0: no cap
    account_check: float = 30.0  # seconds: how stale its knowledge that a token's user exists may be
    # Set: /readyz and /metrics on this port only (bound on ops_host), off the public one.
    ops_port: int = 0
    ops_host: str = "127.0.0.1"
    body_timeout: float = 30.0  # seconds the whole body of a request may take to arrive (then 408)
    idle_timeout: float = 60.0  # seconds a connection may wait for its next request, or for its headers
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def mode(self) -> str:
        return PRODUCTION if self.redis_url else EMBEDDED

    @property
    def redis_address(self) -> address.RedisAddress | None:
        """Where Redis is (one server or a cluster's startup nodes); None in embedded mode."""
        if not self.redis_url:
            return None
        try:
            return address.parse(self.redis_url, cluster=self.redis_cluster == 1)
        except ValueError as error:
            raise SettingsError(f"COURIER_REDIS_URL {error}") from None

    @property
    def redis_topology(self) -> str:
        """SINGLE (one Redis, or embedded mode) or CLUSTER: which production adapters send,
        notify and persist (docs/design/redis-cluster.md)."""
        where = self.redis_address
        return CLUSTER if where is not None and where.cluster else SINGLE

    @property
    def list_window(self) -> float:
        """worker_list_window, at most half of worker_claim_idle: entries wait un-acked
        through the window, and past the claim time another worker would take them over
        (harmless, but work for nothing)."""
        return min(self.worker_list_window, self.worker_claim_idle / 2)

    @property
    def large_groups(self) -> str:
        """"on" when groups past large_group members become large, "off" when none does."""
        return "on" if self.large_group > 0 else "off"

    @property
    def origins(self) -> list[str] | None:
        items = [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]
        return items or None

    @property
    def send_burst(self) -> float:
        return self.send_rate * 2

    @property
    def registration_rate(self) -> float:
        """Sign-ups per second per address (a bucket of `registrations` refilled over an hour)."""
        return self.registrations / 3600

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        try:
            return [ipaddress.ip_network(item.strip(), strict=False)
                    for item in self.trusted_proxies.split(",") if item.strip()]
        except ValueError as error:
            raise SettingsError(f"trusted_proxies must list addresses or networks: {error}") from None

    @property
    def group_change_rate(self) -> float:
        """Group changes per second per user (the bucket's refill)."""
        return self.group_changes / 60

    @property
    def group_change_burst(self) -> float:
        return float(self.group_changes)

    @property
    def worker_claim_idle_ms(self) -> int:
        return max(1, int(self.worker_claim_idle * 1000))

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'courier.db'}"

    def resolved_jwt_secret(self) -> str:
        """Production requires the secret; the embedded mode makes one once and keeps it."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.mode == PRODUCTION:
            raise SettingsError(
                "COURIER_JWT_SECRET is required in production mode (COURIER_REDIS_URL is set): "
                "set it to a long random string shared by every gateway, e.g. `openssl rand -hex 32`"
            )
        return _embedded_secret(Path(self.data_dir))

    def check(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be 1..65535, not {self.port}")
        if not 0 <= self.ops_port < 65536:
            raise SettingsError(f"ops_port must be 1..65535 (or 0: none), not {self.ops_port}")
        if self.ops_port and self.ops_port == self.port:
            raise SettingsError("ops_port must not be the public port: it is there to keep /metrics and /readyz off it")
        if self.presence_grace < 0:
            raise SettingsError("presence_grace must be 0 or more seconds")
        if self.receipts_max_group < 0:
            raise SettingsError("receipts_max_group must not be negative")
        if self.large_group < 0:
            raise SettingsError("large_group must not be negative")
        if self.large_group > 0 and self.mode == EMBEDDED and not is_sqlite(self.resolved_database_url()):
            raise SettingsError("large groups in the embedded mode need its SQLite database (a group's stream is "
                                "kept there): set COURIER_LARGE_GROUP=0 with COURIER_DATABASE_URL, or run production")
        if 0 < self.large_group <= self.receipts_max_group:
            # A large group sends no receipts (docs/design/large-groups.md, section 10):
            # a limit at or past the threshold would promise some that never come.
            raise SettingsError(
                f"receipts_max_group ({self.receipts_max_group}) must be less than large_group ({self.large_group}): "
                "groups past COURIER_LARGE_GROUP members get no read receipts; lower COURIER_RECEIPTS_MAX_GROUP")
        if self.edit_window < 0:
            raise SettingsError("edit_window must be 0 or more seconds")
        if self.token_ttl <= 0 or self.max_content_length <= 0:
            raise SettingsError("token_ttl and max_content_length must be positive")
        if self.worker_claim_idle <= 0:
            raise SettingsError("worker_claim_idle must be positive (seconds)")
        if self.worker_list_window < 0:
            raise SettingsError("worker_list_window must be 0 or more seconds")
        for name in ("login_address_failures", "registrations", "hash_queue", "ws_max_per_user", "ws_max_per_address"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.hash_threads < 1:
            raise SettingsError("hash_threads must be at least 1")
        if self.account_check <= 0:
            raise SettingsError("account_check must be positive (seconds)")
        self.trusted_networks  # noqa: B018 - raises SettingsError on a malformed list
        if self.body_timeout <= 0 or self.idle_timeout <= 0:
            raise SettingsError("body_timeout and idle_timeout must be positive (seconds)")
        if self.send_rate < 0 or self.login_failures < 0 or self.group_changes < 0:
            raise SettingsError("send_rate, login_failures and group_changes must not be negative")
        if self.ws_ping_interval and self.ws_ping_timeout > self.ws_ping_interval:
            raise SettingsError("ws_ping_timeout must not be longer than ws_ping_interval")
        if self.reuse_port not in (0, 1):
            raise SettingsError(f"reuse_port must be 0 or 1, not {self.reuse_port}")
        if self.reuse_port and self.mode != PRODUCTION:
            raise SettingsError(
                "reuse_port needs production mode (COURIER_REDIS_URL): in embedded mode each process has "
                "its own in-process bus, so a socket on one process would miss what another accepts"
            )
        if not 0 <= self.redis_wait_replicas <= 16:
            raise SettingsError(f"redis_wait_replicas must be 0 to 16, not {self.redis_wait_replicas}")
        if not 1 <= self.redis_wait_timeout_ms <= 60_000:
            raise SettingsError(f"redis_wait_timeout_ms must be 1 to 60000, not {self.redis_wait_timeout_ms}")
        if self.redis_cluster not in (0, 1):
            raise SettingsError(f"redis_cluster must be 0 or 1, not {self.redis_cluster}")
        if self.redis_cluster and not self.redis_url:
            raise SettingsError("redis_cluster needs COURIER_REDIS_URL: the address of a node of the cluster")
        self.redis_address  # noqa: B018 - raises SettingsError on a malformed URL
        if not 1 <= self.redis_buckets <= SLOTS:
            raise SettingsError(f"redis_buckets must be 1..{SLOTS}, not {self.redis_buckets}")
        if self.event_loop not in ("uvloop", "asyncio"):
            raise SettingsError(f"event_loop must be uvloop or asyncio, not {self.event_loop}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"log_level must be debug, info, warning, error or critical, not {self.log_level}")


def _embedded_secret(data_dir: Path) -> str:
    path = data_dir / "jwt_secret"
    make_private_dir(data_dir)
    # O_EXCL: two processes starting at once agree on one secret.
    fd = create_private_file(path)
    if fd is None:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()


_FIELDS = [f for f in fields(Settings) if f.name != "extra"]


def add_flags(parser: argparse.ArgumentParser) -> None:
    for f in _FIELDS:
        names = {"--" + f.name, "--" + f.name.replace("_", "-")}
        parser.add_argument(*sorted(names), dest=f.name, default=None, help=f"COURIER_{f.name.upper()}")


def load(args: argparse.Namespace | None = None, environ: dict | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {}
    for f in _FIELDS:
        raw = getattr(args, f.name, None) if args is not None else None
        if raw is None:
            raw = environ.get("COURIER_" + f.name.upper())
        if raw is None or raw == "" and f.type != "str":
            continue
        try:
            values[f.name] = {"int": int, "float": float}.get(f.type, str)(raw)
        except ValueError:
            raise SettingsError(f"COURIER_{f.name.upper()} must be a number, not {raw!r}") from None
    if "large_group" not in values and not values.get("redis_url") and values.get("database_url") \
            and not is_sqlite(values["database_url"]):
        # The embedded mode keeps large groups' streams in its SQLite database only; on a
        # server database it runs without them unless told otherwise (then check() refuses).
        values["large_group"] = 0
    settings = Settings(**values)
    settings.check()
    return settings
