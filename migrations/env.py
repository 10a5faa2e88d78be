"""Alembic environment: runs against POSTHOUSE_DATABASE_URL (or a URL the caller sets)."""

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from posthouse.config import get_settings
from posthouse.db.engine import create_engine
from posthouse.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), null_pool=True)
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table's constraints by copying it into a new table and
            # dropping the old one, which its foreign keys refuse while rows refer to
            # it. As SQLite's documentation prescribes: keys off (outside a transaction,
            # where the pragma is a no-op), change, then check every key.
            await _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
        await connection.run_sync(_run)
        await connection.commit()
        if sqlite:
            violations = await _sqlite_pragma(connection, "PRAGMA foreign_key_check")
            if violations:
                raise RuntimeError(f"the migration broke foreign keys: {violations[:10]}")
    await engine.dispose()


async def _sqlite_pragma(connection: AsyncConnection, pragma: str) -> list[Any]:
    """Run ``pragma`` on the driver's connection, outside any transaction SQLAlchemy
    would begin (posthouse's SQLite engine begins each one with BEGIN IMMEDIATE)."""
    raw = await connection.get_raw_connection()
    cursor = await raw.driver_connection.execute(pragma)
    return list(await cursor.fetchall())


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
