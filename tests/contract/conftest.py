"""Contract tests: one suite per port, run over every adapter of it (memory, SQL on
SQLite and MariaDB, Redis), so the adapters cannot drift apart.

- sql_database(kind): a Database on a migrated SQLite file ("sqlite") or on the run's
  MariaDB database, emptied ("mysql"), closed after the test."""
from __future__ import annotations

import pytest

from adapters.sql import migrate
from adapters.sql.database import Database
from tests.contract.adapters import KINDS
from tests.services.mysql import empty_tables


@pytest.fixture
def sql_database(request, tmp_path):
    opened: list[Database] = []

    def make(kind: str) -> Database:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'courier.db'}"
            migrate.upgrade(url)
        else:
            url = request.getfixturevalue("mysql_migrated_url")
            empty_tables(url)
        database = Database(url, workers=2)
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()


@pytest.fixture(params=[pytest.param(kind, marks=[pytest.mark.mysql] if kind == "mysql" else
                                     [pytest.mark.redis] if kind.startswith("redis") else []) for kind in KINDS])
def kind(request) -> str:
    """Which adapter a suite runs over: memory (the tests' fake), SQL on SQLite and
    MariaDB (the embedded mode's), Redis (production)."""
    return request.param
