"""Settings: COURIER_* environment variables, or flags of the same name
(`--port 9000`, `--database-url ...`, `--database_url ...`). Flags win."""
from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

EMBEDDED, PRODUCTION = "embedded", "production"


class SettingsError(Exception):
    """A setting is missing or malformed; the message says which and why."""


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = ""  # empty: a SQLite file in data_dir
    redis_url: str = ""  # empty: the embedded in-process adapters
    jwt_secret: str = ""
    token_ttl: int = 86400
    max_content_length: int = 4000
    allowed_origins: str = ""  # empty: any origin
    log_level: str = "info"
    log_file: str = ""
    send_rate: float = 20.0
    login_failures: int = 10
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
    worker_linger: float = 0.05  # seconds a worker waits to fill a batch it found less than full
    body_timeout: float = 30.0  # seconds the whole body of a request may take to arrive (then 408)
    idle_timeout: float = 60.0  # seconds a connection may wait for its next request, or for its headers
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def mode(self) -> str:
        return PRODUCTION if self.redis_url else EMBEDDED

    @property
    def origins(self) -> list[str] | None:
        items = [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]
        return items or None

    @property
    def send_burst(self) -> float:
        return self.send_rate * 2

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
        if self.token_ttl <= 0 or self.max_content_length <= 0:
            raise SettingsError("token_ttl and max_content_length must be positive")
        if self.worker_claim_idle <= 0:
            raise SettingsError("worker_claim_idle must be positive (seconds)")
        if self.body_timeout <= 0 or self.idle_timeout <= 0:
            raise SettingsError("body_timeout and idle_timeout must be positive (seconds)")
        if self.send_rate < 0 or self.login_failures < 0:
            raise SettingsError("send_rate and login_failures must not be negative")
        if self.ws_ping_interval and self.ws_ping_timeout > self.ws_ping_interval:
            raise SettingsError("ws_ping_timeout must not be longer than ws_ping_interval")
        if self.reuse_port not in (0, 1):
            raise SettingsError(f"reuse_port must be 0 or 1, not {self.reuse_port}")
        if self.reuse_port and self.mode != PRODUCTION:
            raise SettingsError(
                "reuse_port needs production mode (COURIER_REDIS_URL): in embedded mode each process has "
                "its own in-process bus, so a socket on one process would miss what another accepts"
            )
        if self.event_loop not in ("uvloop", "asyncio"):
            raise SettingsError(f"event_loop must be uvloop or asyncio, not {self.event_loop}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"log_level must be debug, info, warning, error or critical, not {self.log_level}")


def _embedded_secret(data_dir: Path) -> str:
    path = data_dir / "jwt_secret"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once agree on one secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
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
    settings = Settings(**values)
    settings.check()
    return settings
