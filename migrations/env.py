"""Alembic environment: migrates the database named in the Alembic config (see store.db)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, pool

from store.db import make_engine
from store.models import Base
from store.settings import Settings

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # store.db.migrate sets the URL; the bare `alembic` CLI falls back to MEMLAB_* settings.
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            _suspend_sqlite_foreign_keys(connection)
        # render_as_batch lets ALTER-style migrations work on SQLite too.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "sqlite":
            _check_sqlite_foreign_keys(connection)
    engine.dispose()


def _suspend_sqlite_foreign_keys(connection: Connection) -> None:
    """Turn SQLite's foreign keys off for this connection, before any transaction.

    Batch mode rebuilds a table by copying it and dropping the original; with foreign
    keys on, that drop deletes the original's rows first and cascades the delete to
    every child row (tags, metric points, artifacts). The PRAGMA is ignored inside a
    transaction, so it is committed before Alembic begins one.
    """
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    """Fail the migration loudly if it left a row pointing at a row that is not there."""
    orphans = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    connection.commit()
    if orphans:
        raise RuntimeError(f"migration left rows with dangling foreign keys: {orphans[:10]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
