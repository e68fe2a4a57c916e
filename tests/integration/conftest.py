"""Database fixtures of the integration tests: real SQLite files and a real MariaDB.

- sqlite_url: a fresh SQLite file per test.
- mysql_server_url, make_mysql_database, mysql_migrated_url: the MariaDB server
  and databases on it (tests/services/mysql.py, registered by tests/conftest.py).
- database_url: parametrised over "sqlite" and "mysql", migrated to head by
  alembic; on MySQL one database per run, emptied before each test.
- db: a Database on database_url, closed after the test.

Redis fixtures live in tests/services/redis.py."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.sql import migrate
from adapters.sql.database import Database
from tests.services.mysql import empty_tables


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    # A subdirectory that does not exist yet: Database and migrations must create it.
    return f"sqlite:///{tmp_path / 'data' / 'courier.db'}"


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def database_url(request) -> str:
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        migrate.upgrade(url)
        return url
    url = request.getfixturevalue("mysql_migrated_url")
    empty_tables(url)
    return url


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url, workers=4)
    yield database
    database.close()
