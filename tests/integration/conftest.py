"""Database fixtures of the integration tests: real SQLite files and a real MariaDB.

- sqlite_url: a fresh SQLite file per test.
- mysql_server_url: the MariaDB server (COURIER_TEST_MYSQL_URL, default
  mysql+pymysql://root@127.0.0.1:3306); tests needing it are skipped, with the
  reason, only when it cannot be reached.
- make_mysql_database(): a new, empty database `courier_test_<random>` on it,
  dropped at the end of the run.
- database_url: parametrised over "sqlite" and "mysql", migrated to head by
  alembic; on MySQL one database per run, emptied before each test.
- db: a Database on database_url, closed after the test.

Redis fixtures live in tests/integration/redis_fixtures.py."""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, delete, pool, text
from sqlalchemy.engine import make_url

from adapters.sql import migrate
from adapters.sql.database import Database
from adapters.sql.tables import metadata

MYSQL_SERVER_URL = os.environ.get("COURIER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    # A subdirectory that does not exist yet: Database and migrations must create it.
    return f"sqlite:///{tmp_path / 'data' / 'courier.db'}"


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


def _empty_tables(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):  # children before parents
                conn.execute(delete(table))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def database_url(request) -> str:
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        migrate.upgrade(url)
        return url
    url = request.getfixturevalue("mysql_migrated_url")
    _empty_tables(url)
    return url


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url, workers=4)
    yield database
    database.close()
