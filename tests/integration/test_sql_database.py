"""Database: threads, SQLite settings, and driver failures turned into ServiceUnavailable."""
from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import text

from adapters.sql.database import Database
from adapters.sql.users import SqlUserRepository
from domain.errors import ServiceUnavailable


def pragmas(conn) -> dict:
    return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "wal_autocheckpoint")}


@pytest.mark.gen_test
async def test_sqlite_is_durable_and_checks_foreign_keys(sqlite_url):
    db = Database(sqlite_url)
    try:
        # synchronous: 2 is FULL; WAL persists in the file.
        assert await db.run(pragmas) == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                                         "busy_timeout": 10_000, "wal_autocheckpoint": 10_000}
        assert (await db.write(pragmas))["synchronous"] == 2
    finally:
        db.close()


@pytest.mark.gen_test
async def test_queries_never_run_on_the_event_loop(db):
    loop_thread = threading.current_thread()
    reader = await db.run(lambda conn: threading.current_thread())
    writer = await db.write(lambda conn: threading.current_thread())
    assert loop_thread not in (reader, writer)
    if db.is_sqlite:  # one writer thread, always the same one
        assert await db.write(lambda conn: threading.current_thread()) is writer


@pytest.mark.gen_test
async def test_an_unmigrated_database_is_unavailable_not_a_crash(sqlite_url):
    db = Database(sqlite_url)
    try:
        with pytest.raises(ServiceUnavailable):
            await SqlUserRepository(db).get("00000000-0000-0000-0000-000000000000")
    finally:
        db.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_unreachable_server_is_unavailable():
    # Nothing listens on port 1; the connection is refused at once.
    db = Database("mysql+pymysql://courier@127.0.0.1:1/courier", connect_timeout=2)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await SqlUserRepository(db).get_by_username("anyone")
        assert raised.value.__cause__ is not None
    finally:
        db.close()


@pytest.mark.gen_test
async def test_a_closed_database_is_unavailable(sqlite_url):
    db = Database(sqlite_url)
    assert await db.run(lambda conn: conn.execute(text("SELECT 1")).scalar()) == 1
    db.close()
    db.close()  # twice is harmless
    with pytest.raises(ServiceUnavailable):
        await db.run(lambda conn: None)


@pytest.mark.gen_test
async def test_an_in_memory_sqlite_database_works_across_calls():
    db = Database("sqlite://")
    try:
        await db.write(lambda conn: (conn.execute(text("CREATE TABLE t (x INTEGER)")), conn.commit()))
        await db.write(lambda conn: (conn.execute(text("INSERT INTO t VALUES (1)")), conn.commit()))
        assert await db.run(lambda conn: conn.execute(text("SELECT x FROM t")).scalar()) == 1
    finally:
        db.close()


def test_nothing_connects_before_it_is_used(tmp_path):
    url = f"sqlite:///{tmp_path / 'lazy' / 'courier.db'}"
    db = Database(url)
    try:
        assert (tmp_path / "lazy").is_dir()  # the directory is ready, and the file made private...
        assert (tmp_path / "lazy" / "courier.db").stat().st_size == 0  # ...but not opened yet
        assert not (tmp_path / "lazy" / "courier.db-wal").exists()
    finally:
        db.close()


@pytest.mark.gen_test
async def test_a_failed_statement_does_not_name_its_parameters(db):
    """Such errors are logged (a refused user insert, a message the store refuses): the
    parameters would carry password hashes and message contents into the logs."""
    secret = "$argon2id$v=19$m=65536,t=3,p=4$never-logged"

    def fail(conn):
        with conn.begin():
            conn.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": secret})

    with pytest.raises(ServiceUnavailable) as refused:
        await db.write(fail)
    cause = refused.value.__cause__
    assert cause is not None and "no_such_table" in str(cause)
    assert secret not in str(cause) and secret not in repr(cause)


@pytest.mark.gen_test(timeout=60)
async def test_a_transaction_ended_by_a_deadlock_is_run_again(db):
    """Two transactions lock two rows in opposite orders: InnoDB ends one of them (1213),
    and the Database runs it again instead of answering ServiceUnavailable."""
    if db.is_sqlite:
        pytest.skip("SQLite has one writer: no deadlock between transactions")
    table = f"deadlock_{threading.get_ident()}"
    await db.write(lambda conn: (conn.exec_driver_sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, n INT)"),
                                 conn.exec_driver_sql(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"), conn.commit()))
    both_hold_one = threading.Barrier(2, timeout=10)
    runs = {"first": 0, "second": 0}

    def locking(first: int, second: int, name: str):
        def fn(conn):
            runs[name] += 1
            with conn.begin():
                conn.exec_driver_sql(f"UPDATE {table} SET n = n + 1 WHERE id = {first}")
                if runs[name] == 1:
                    both_hold_one.wait()  # each holds one row and asks for the other's
                conn.exec_driver_sql(f"UPDATE {table} SET n = n + 1 WHERE id = {second}")
        return fn

    try:
        await asyncio.gather(db.write(locking(1, 2, "first")), db.write(locking(2, 1, "second")))
        assert sorted(runs.values()) == [1, 2]  # the deadlock's victim ran twice
        counts = await db.run(lambda conn: [r[0] for r in conn.exec_driver_sql(f"SELECT n FROM {table}")])
        assert counts == [2, 2]  # each committed once: the victim's first run was rolled back
    finally:
        await db.write(lambda conn: (conn.exec_driver_sql(f"DROP TABLE {table}"), conn.commit()))
