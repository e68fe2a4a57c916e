"""One database (SQLite file or MySQL/MariaDB server): its Engine and the threads
that talk to it.

pymysql and sqlite3 block, so no query ever runs on the event loop: adapters
hand a function to `run` (reads) or `write` (writes) and it runs in a thread
with a Connection. Driver failures come back as domain.errors.ServiceUnavailable.

SQLite specifics, and why:
- journal_mode=WAL: readers never block the writer nor each other.
- synchronous=FULL (the default here): a commit is fsynced before `write`
  returns, so a message answered with 201 survives a kill -9 *and* a power
  loss. WAL + NORMAL would survive a process crash but may lose the last
  commits on power loss; the embedded inbox groups concurrent sends into one
  commit (adapters/sql/inbox.py), which pays for the fsync. Pass
  sqlite_synchronous="NORMAL" to trade that for speed.
- One writer thread: SQLite takes one writer at a time anyway, and with a
  single thread writes never wait on each other's locks (no SQLITE_BUSY inside
  the process). Writes start with BEGIN IMMEDIATE so that against another
  process (a `courier migrate`, a second server) they wait for the lock with
  busy_timeout up front instead of failing when a read turns into a write.
- pysqlite's own transaction handling is switched off (isolation_level=None)
  and SQLAlchemy emits BEGIN itself: the SQLAlchemy-documented recipe, so a
  transaction really covers its SELECTs too.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from adapters.private_files import create_private_file, make_private_dir
from domain.errors import ServiceUnavailable

log = logging.getLogger("courier.sql")

DEFAULT_SQLITE_URL = "sqlite:///data/courier.db"
# A commit that finds the WAL past this many pages copies them into the database file
# (and fsyncs it) before it returns. SQLite's default, 1,000 pages (4 MB), made every
# few group commits of the embedded inbox pay a checkpoint, rewriting the same hot index
# pages again and again; 10,000 (40 MB of WAL at most) rewrites each once per ten times
# as many commits. Closed-loop sends, embedded, C=128: 2,835 / 2,794 -> 3,455 / 3,277 per s
# (docs/perf-notes.md, change 20).
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000

T = TypeVar("T")

# The error of a failed statement lists its parameters, and such errors are logged:
# without them, password hashes and message contents never reach a log line.
_HIDE_PARAMETERS = {"hide_parameters": True}

# Failures of the database service (down, unreachable, locked, missing schema),
# as opposed to what a query itself got wrong (IntegrityError, DataError),
# which the repositories interpret.
_UNAVAILABLE = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.InternalError,
    exc.ProgrammingError,  # e.g. MySQL "table doesn't exist": not migrated
    exc.DisconnectionError,
    exc.TimeoutError,  # no pooled connection came free in time
)


# InnoDB ends one of two transactions that wait on each other (error 1213) and rolls it
# back whole: such a transaction is to be run again, not reported (MySQL's manual: "always
# be prepared to re-issue a transaction if it fails due to deadlock"). An edit and the
# worker storing the same conversation's messages can meet so.
MYSQL_DEADLOCK = 1213
DEADLOCK_ATTEMPTS = 4
DEADLOCK_BACKOFF = 0.01  # seconds, doubled at each attempt


def is_deadlock(error: exc.DBAPIError) -> bool:
    args = getattr(error.orig, "args", ())
    return bool(args) and args[0] == MYSQL_DEADLOCK


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def prepare_url(url: str | URL) -> URL:
    """The URL as Courier uses it: a SQLite file exists, private; MySQL talks utf8mb4."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            _create_private_sqlite_file(Path(path).expanduser().resolve())
    elif url.get_backend_name() in ("mysql", "mariadb") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def _create_private_sqlite_file(path: Path) -> None:
    """A new SQLite file is created here, empty (SQLite takes an empty file for a new
    database) and 0600 in a 0700 directory, before SQLite opens it: SQLite would make
    it 0644 less the umask. Its -wal and -shm files take the database file's mode."""
    make_private_dir(path.parent)
    fd = create_private_file(path)
    if fd is not None:
        os.close(fd)


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


class Database:
    """Owns the Engine and the executor threads of one database.

    `workers` bounds the threads (and pooled connections) for reads; on SQLite
    writes get one more thread of their own, on MySQL they share the pool."""

    def __init__(
        self,
        url: str | URL,
        *,
        workers: int = 8,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        connect_timeout: int = 5,
        echo: bool = False,
    ):
        self.url = prepare_url(url)
        self.dialect_name = self.url.get_backend_name()
        self.is_sqlite = self.dialect_name == "sqlite"
        if self.is_sqlite:
            self.engine = self._sqlite_engine(workers, sqlite_synchronous.upper(), busy_timeout_ms, echo)
            shared = _is_memory_sqlite(self.url)  # one connection, so one thread for everything
            self._readers: Executor = ThreadPoolExecutor(1 if shared else workers, "courier-db")
            self._writer: Executor = self._readers if shared else ThreadPoolExecutor(1, "courier-db-writer")
        else:
            self.engine = create_engine(
                self.url,
                pool_size=workers,
                max_overflow=0,
                pool_pre_ping=True,  # a restarted server costs one failed ping, not a 503
                pool_recycle=3600,  # below MySQL's wait_timeout
                # READ COMMITTED: fewer gap locks (and deadlocks) between concurrent inserts.
                isolation_level="READ COMMITTED",
                connect_args={"connect_timeout": connect_timeout},
                **_HIDE_PARAMETERS,
                echo=echo,
            )
            self._readers = self._writer = ThreadPoolExecutor(workers, "courier-db")
        self._closed = False

    def _sqlite_engine(self, workers: int, synchronous: str, busy_timeout_ms: int, echo: bool) -> Engine:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"sqlite_synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        if _is_memory_sqlite(self.url):
            engine = create_engine(
                self.url, poolclass=StaticPool, connect_args={"check_same_thread": False}, echo=echo,
                **_HIDE_PARAMETERS,
            )
        else:
            engine = create_engine(
                self.url,
                pool_size=workers + 1,
                max_overflow=0,
                connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
                echo=echo,
                **_HIDE_PARAMETERS,
            )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA synchronous={synchronous}")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
                cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("courier_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(connection, *args) in a worker thread; for reads."""
        return await self._submit(self._readers, False, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(connection, *args) in the writer thread (SQLite) or a worker (MySQL)."""
        return await self._submit(self._writer, True, fn, args)

    async def _submit(self, executor: Executor, writing: bool, fn: Callable[..., T], args: tuple) -> T:
        if self._closed:
            raise ServiceUnavailable("the database is closed")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, self.call, writing, fn, *args)
        except RuntimeError as e:  # the executor was shut down
            raise ServiceUnavailable("the database is closed") from e
        return await future

    def call(self, writing: bool, fn: Callable[..., T], *args: Any) -> T:
        """The blocking part (also usable from scripts and tests, off the event loop).
        fn runs its own transactions; one that InnoDB ended as a deadlock's victim (rolled
        back whole) is run again, a few times."""
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with self.engine.connect() as conn:
                    if writing and self.is_sqlite:
                        conn.execution_options(courier_write=True)
                    return fn(conn, *args)
            except exc.OperationalError as e:
                if is_deadlock(e) and attempt < DEADLOCK_ATTEMPTS:
                    log.info("deadlock (attempt %d of %d): running the transaction again", attempt,
                             DEADLOCK_ATTEMPTS)
                    time.sleep(DEADLOCK_BACKOFF * 2 ** (attempt - 1))
                    continue
                log.warning("database unavailable: %s", e)
                raise ServiceUnavailable("the database is unavailable") from e
            except _UNAVAILABLE as e:
                log.warning("database unavailable: %s", e)
                raise ServiceUnavailable("the database is unavailable") from e
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        """Raise ServiceUnavailable unless the database answers (for /readyz)."""
        await self.run(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())

    def close(self) -> None:
        """Wait for running queries, then close every connection. Blocks: call at shutdown."""
        if self._closed:
            return
        self._closed = True
        self._readers.shutdown(wait=True)
        if self._writer is not self._readers:
            self._writer.shutdown(wait=True)
        self.engine.dispose()

    dispose = close

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
