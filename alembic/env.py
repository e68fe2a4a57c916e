"""Alembic's entry: migrate the database Courier is configured for.

The URL, first found wins: config.attributes["url"] (adapters/sql/migrate.py),
`alembic -x url=...`, the ini's sqlalchemy.url, COURIER_DATABASE_URL, and the
embedded default. The target metadata is adapters/sql/tables.py: autogenerate
compares against it. SQLite cannot ALTER most things, so batch mode is on there."""
from __future__ import annotations

import os

from sqlalchemy import create_engine, pool

from adapters.sql.database import DEFAULT_SQLITE_URL, prepare_url
from adapters.sql.tables import include_object, metadata
from alembic import context

config = context.config

if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("COURIER_DATABASE_URL")
        or DEFAULT_SQLITE_URL
    )


def configure(**kwargs) -> None:
    url = prepare_url(database_url())
    context.configure(
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=url.get_backend_name() == "sqlite",
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    configure(url=prepare_url(database_url()), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(prepare_url(database_url()), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
