"""MySQL (MariaDB) fixtures shared by the integration, end-to-end and production
tests, registered for every test by tests/conftest.py (pytest_plugins).

- mysql_server_url: the shared MariaDB server (COURIER_TEST_MYSQL_URL, default
  mysql+pymysql://root@127.0.0.1:3306); tests needing it are skipped, with the
  reason, only when it cannot be reached.
- make_mysql_database(): a new, empty database `courier_test_<random>` on it,
  dropped at the end of the run.
- mysql_migrated_url: one such database per run, migrated to head.
- empty_tables(url): delete every row of Courier's tables (children first).
- private_mariadb: a mariadbd of the test's own (its own data directory, port and
  socket), that a test may stop, kill and start again; the shared server is used
  by other tests concurrently and must never be stopped."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, pool, text
from sqlalchemy.engine import make_url

from adapters.sql import migrate
from adapters.sql.tables import metadata
from tests.services.redis import spare_port

MYSQL_SERVER_URL = os.environ.get("COURIER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
MARIADBD = "/usr/sbin/mariadbd"

__all__ = ["MYSQL_SERVER_URL", "PrivateMariaDB", "empty_tables", "_empty_tables"]


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    engine = create_engine(MYSQL_SERVER_URL, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:  # any failure to connect means "not here"
        pytest.skip(f"MariaDB is not reachable at {MYSQL_SERVER_URL} ({type(e).__name__}: {e})")
    finally:
        engine.dispose()
    return MYSQL_SERVER_URL


@pytest.fixture(scope="session")
def make_mysql_database(mysql_server_url) -> Iterator[Callable[[], str]]:
    """Creates empty databases for this run; drops them all at the end."""
    created: list[str] = []
    admin = create_engine(mysql_server_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")

    def make() -> str:
        name = f"courier_test_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        created.append(name)
        return make_url(mysql_server_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture(scope="session")
def mysql_migrated_url(make_mysql_database) -> str:
    url = make_mysql_database()
    migrate.upgrade(url)
    return url


def empty_tables(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):  # children before parents
                conn.execute(delete(table))
    finally:
        engine.dispose()


_empty_tables = empty_tables  # the name the integration tests know


class PrivateMariaDB:
    """A mariadbd of one test: a data directory made by mariadb-install-db, a spare
    port, root without a password. Small InnoDB buffers, no binary log: it holds a
    few tables of a test. start() waits until it answers; stop() is SIGTERM (a clean
    shutdown), kill() SIGKILL (InnoDB recovers committed rows from its redo log)."""

    SERVER_OPTIONS = ("--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M", "--skip-log-bin",
                      "--skip-name-resolve", "--max-connections=100")

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.datadir = self.directory / "data"
        self.socket = self.directory / "mysqld.sock"
        self.log = self.directory / "mariadbd.log"
        self.port = spare_port()
        self.server_url = f"mysql+pymysql://root@127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def install(self) -> None:
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        result = subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", *as_root,
             "--auth-root-authentication-method=normal", "--skip-test-db", *self.SERVER_OPTIONS],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout.decode(errors='replace')[-2000:]}")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                 f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.directory / 'pid'}",
                 *as_root, *self.SERVER_OPTIONS],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        engine = create_engine(self.server_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 1})
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                    return
                except Exception:  # noqa: BLE001 - not up yet
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"mariadbd did not start:\n{self.output()}") from None
                    time.sleep(0.05)
        finally:
            engine.dispose()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def create_database(self, name: str = "courier") -> str:
        admin = create_engine(self.server_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        finally:
            admin.dispose()
        return f"{self.server_url}/{name}"


@pytest.fixture
def private_mariadb(tmp_path_factory) -> Iterator[PrivateMariaDB]:
    """A started mariadbd of this test alone; stopped and its files removed after it.
    (A short directory: the socket path must fit in 108 bytes.)"""
    if shutil.which("mariadb-install-db") is None or not os.access(MARIADBD, os.X_OK):
        pytest.skip("mariadb-install-db or mariadbd is not installed")
    directory = tmp_path_factory.mktemp("mariadb")
    server = PrivateMariaDB(directory)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)
