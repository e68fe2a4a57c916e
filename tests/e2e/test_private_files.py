"""The data directory is created 0700 and the SQLite file (with its -wal and -shm files)
and the generated token secret 0600, whatever the umask: they hold password hashes,
every message and the key that signs tokens. With umask 0 they were 0777 and 0644
(the database) - any local user could read them."""
from __future__ import annotations

import os
import stat

import pytest

from entrypoints.settings import EMBEDDED


@pytest.fixture
def settings_overrides():
    """The courier fixture starts the server with the process umask at 0 (as some
    containers and service managers leave it): the worst case."""
    previous = os.umask(0)
    try:
        yield {"database_url": ""}  # production mode too: on the default SQLite file
    finally:
        os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.gen_test(timeout=30)
async def test_the_data_directory_and_its_files_are_private(api, courier):
    a, b = await api.register(), await api.register()
    assert (await api.send(a, b, "kept private")).status == 201
    await courier.settle()  # production: the worker has written the database too
    data = courier.settings.data_dir
    assert oct(mode_of(data)) == oct(0o700)
    files = ["courier.db", "courier.db-wal", "courier.db-shm"]
    if courier.mode == EMBEDDED:
        files.append("jwt_secret")
    assert {name: oct(mode_of(os.path.join(data, name))) for name in files} == {name: oct(0o600) for name in files}
