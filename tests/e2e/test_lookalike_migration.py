"""Accounts registered before look-alike names were refused (issue 13, point 1): a
database at revision 0001 holds names that now collide; `courier migrate` (revision
0002) reports them, deletes and renames nothing, and every account still logs in with
its own spelling, while a look-alike spelling finds the first registered.
Embedded: a SQLite file; production: a MariaDB database."""
from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import argon2
import pytest
from sqlalchemy import DateTime, column, create_engine, insert, pool, select, table

from adapters.sql import migrate
from adapters.sql.database import prepare_url
from adapters.sql.tables import users
from entrypoints.settings import EMBEDDED
from tests.e2e.conftest import TEST_DEFAULTS
from tests.e2e.support import assert_error

MATH_BOLD_ALICE = "\U0001d41a\U0001d425\U0001d422\U0001d41c\U0001d41e"
MATH_BOLD_CAPITAL_ALICE = "\U0001d400\U0001d40b\U0001d408\U0001d402\U0001d404"  # no case mapping: not casefolded
CYRILLIC_ALICE = "\u0430lice"
# Oldest first. "ｂｏｂ" is older than "Bob": the first registered keeps the normalised key.
LEGACY_NAMES = ["alice", "ａｌｉｃｅ", MATH_BOLD_ALICE, CYRILLIC_ALICE, "ｂｏｂ", "Bob", "carol"]


USERS_0001 = table("users", column("id"), column("username"), column("username_key"), column("password_hash"),
                   column("created_at", DateTime()))


def password_of(name: str) -> str:
    return f"password of {name}"


@dataclass
class Legacy:
    url: str
    ids: dict[str, str]  # username -> user id
    report: str  # what `courier migrate` wrote


@pytest.fixture
def legacy(mode, tmp_path, request) -> Legacy:
    if mode == EMBEDDED:
        url = f"sqlite:///{tmp_path / 'legacy' / 'courier.db'}"
    else:
        url = request.getfixturevalue("make_mysql_database")()
    migrate.upgrade(url, "0001")
    ids = fill_0001_users(url, LEGACY_NAMES)
    courier = Path(sys.executable).parent / "courier"
    done = subprocess.run([str(courier), "migrate"], env={"COURIER_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Legacy(url, ids, done.stdout + done.stderr)


@pytest.fixture
def settings_overrides(legacy) -> dict:
    return {"database_url": legacy.url}  # the server runs on the migrated legacy database


def fill_0001_users(url: str, names: list[str]) -> dict[str, str]:
    """Users as revision 0001 stored them: the case-folded key only, unique."""
    hasher = argon2.PasswordHasher(time_cost=TEST_DEFAULTS["argon2_time_cost"],
                                   memory_cost=TEST_DEFAULTS["argon2_memory_kib"],
                                   parallelism=TEST_DEFAULTS["argon2_parallelism"])
    start = datetime(2026, 1, 1)
    ids = {name: str(uuid.uuid4()) for name in names}
    rows = [dict(id=ids[name], username=name, username_key=name.casefold(),
                 password_hash=hasher.hash(password_of(name)), created_at=start + timedelta(seconds=i))
            for i, name in enumerate(names)]
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(USERS_0001), rows)
    finally:
        engine.dispose()
    return ids


def stored_users(url: str) -> dict[str, str | None]:
    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(users.c.username, users.c.normalised_key)).all())
    finally:
        engine.dispose()


def report_line(report: str, text: str) -> str:
    lines = [line for line in report.splitlines() if text in line]
    assert len(lines) == 1, (text, report)
    return lines[0]


# The first two need no server: they read `courier migrate`'s output and the database.
def test_courier_migrate_reports_every_group_of_names_that_now_look_alike(legacy):
    alice = report_line(legacy.report, "look alike as 'alice'")
    for name in ("alice", "ａｌｉｃｅ", MATH_BOLD_ALICE):
        assert f"{name!r}" in alice and legacy.ids[name] in alice
    assert alice.index(legacy.ids["alice"]) < alice.index(legacy.ids["ａｌｉｃｅ"])  # the first registered first
    assert "\\uff41\\uff4c\\uff49\\uff43\\uff45" in alice  # the code points, which a log cannot make look alike
    bob = report_line(legacy.report, "look alike as 'bob'")
    assert bob.index(legacy.ids["ｂｏｂ"]) < bob.index(legacy.ids["Bob"])
    assert "2 group(s) of existing usernames now look alike" in legacy.report
    # The Cyrillic name looks like no other to NFKC: it is reported as a name the rule now refuses.
    cyrillic = report_line(legacy.report, legacy.ids[CYRILLIC_ALICE])
    assert "mix scripts (Cyrillic and Latin)" in cyrillic and "is kept" in cyrillic
    assert "carol" not in legacy.report


def test_nothing_is_deleted_or_renamed_and_the_first_registered_keeps_the_key(legacy):
    assert stored_users(legacy.url) == {
        "alice": "alice", "ａｌｉｃｅ": None, MATH_BOLD_ALICE: None, CYRILLIC_ALICE: CYRILLIC_ALICE,
        "ｂｏｂ": "bob", "Bob": None, "carol": "carol",
    }


@pytest.mark.gen_test(timeout=60)
async def test_every_account_still_logs_in_with_its_own_spelling(api, legacy):
    for name in LEGACY_NAMES:
        r = await api.login(name, password_of(name))
        assert r.status == 200, (name, r)
        assert (r.body["user_id"], r.body["username"]) == (legacy.ids[name], name)
    # The spelling decides the account: "ａｌｉｃｅ" is the fullwidth one, not alice.
    assert_error(await api.login("ａｌｉｃｅ", password_of("alice")), 401, "invalid_credentials")


@pytest.mark.gen_test(timeout=60)
async def test_a_spelling_is_found_as_itself_first_then_as_the_name_it_looks_like(api, legacy):
    token = (await api.login("carol", password_of("carol"))).body["token"]
    expected = {
        "ALICE": "alice", "ａｌｉｃｅ": "ａｌｉｃｅ", "ＡＬＩＣＥ": "ａｌｉｃｅ",  # by spelling, regardless of case
        MATH_BOLD_CAPITAL_ALICE: "alice",  # no account of that spelling: the first that looks like it
        "BOB": "Bob", "𝐛𝐨𝐛": "ｂｏｂ", "ｃａｒｏｌ": "carol", CYRILLIC_ALICE.upper(): CYRILLIC_ALICE,
    }
    for spelling, name in expected.items():
        r = await api.call("GET", "/api/v1/users?username=" + quote(spelling), token=token)
        assert r.status == 200 and r.body == {"user_id": legacy.ids[name], "username": name}, (spelling, r)
    login = await api.login(MATH_BOLD_CAPITAL_ALICE, password_of("alice"))
    assert login.status == 200 and login.body["user_id"] == legacy.ids["alice"], login


@pytest.mark.gen_test(timeout=60)
async def test_no_new_account_may_look_like_an_old_one(api, legacy):
    for name in ("Ａlice", "𝐀lice", "ａｌｉｃｅ", "ＢＯＢ", "ｃａｒｏｌ"):
        r = await api.call("POST", "/api/v1/users/register", {"username": name, "password": "password-123"})
        assert_error(r, 409, "username_taken")
    r = await api.call("POST", "/api/v1/users/register", {"username": "\u0430lice2", "password": "password-123"})
    assert_error(r, 400, "invalid_username")
    assert len(stored_users(legacy.url)) == len(LEGACY_NAMES)
