"""Run the alembic migrations from code: `courier migrate`, and `courier serve`
in the embedded mode, call upgrade(url)."""
from __future__ import annotations

import functools
from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from adapters.sql.database import prepare_url
from alembic import command

SCRIPT_LOCATION = Path(__file__).resolve().parents[2] / "alembic"


def alembic_config(url: str | URL) -> Config:
    config = Config()  # no ini file: nothing here reconfigures the application's logging
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Handed over as an attribute, not an ini option: a URL's "%" would be read as
    # configparser interpolation there. alembic/env.py reads it first.
    config.attributes["url"] = prepare_url(url).render_as_string(hide_password=False)
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | URL, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This version's head revision, and every revision it knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision the database of `connection` is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def is_behind(revision: str | None) -> bool:
    """Whether a database at `revision` lacks what this version needs: never migrated,
    or at one of this version's older revisions. A revision this version does not know
    comes after it (the database was migrated for a newer release first, as a rolling
    upgrade does): not behind."""
    head, known = _revisions()
    return revision is None or (revision in known and revision != head)


def current(url: str | URL) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from sqlalchemy import create_engine, pool

    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()
