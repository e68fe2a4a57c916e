"""Run the alembic migrations from code: `courier migrate`, and `courier serve`
in the embedded mode, call upgrade(url)."""
from __future__ import annotations

from pathlib import Path

from alembic.config import Config
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


def current(url: str | URL) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(prepare_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
