"""Engine and session factory. Built at start-up (never at import) and injected."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: a 2xx promises the message is on disk, even across a power cut.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


# PostgreSQL 14+: a backend checks every second, even in a lock wait, that its client is
# still there, and otherwise rolls back. A killed api process's transaction, and with it
# the Idempotency-Key it held (protections.idempotency), ends within a second.
PG_SERVER_SETTINGS = {"client_connection_check_interval": "1000"}

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def async_database_url(database_url: str) -> str:
    """The URL with the driver posthouse runs on: asyncpg for PostgreSQL (whatever driver
    the URL names: ``postgresql://`` and ``postgresql+psycopg://`` work too), aiosqlite
    for SQLite. asyncpg costs about a quarter less CPU per accepted send than psycopg's
    async mode, and one driver means one tested path."""
    url = make_url(database_url)
    driver = _ASYNC_DRIVERS.get(url.get_backend_name())
    if driver is None:
        raise ValueError(f"unsupported database URL {url!r}: use postgresql:// or sqlite:///")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def create_engine(
    database_url: str, *, pool_size: int = 20, null_pool: bool = False
) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if null_pool:
        kwargs["poolclass"] = NullPool
    elif not database_url.startswith("sqlite"):
        # No pre-ping: it costs a round trip on every checkout, a tenth of an accepted
        # send. A connection found dead fails its one request, and SQLAlchemy then drops
        # every pooled connection older than it; recycling bounds their age meanwhile.
        # The pool is sized for steady load: a connection beyond it is closed when it is
        # returned, so a load that keeps needing one opens a new connection (a forked
        # server process) per request.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size // 2, pool_recycle=1800)
    if not database_url.startswith("sqlite"):
        kwargs["connect_args"] = {"server_settings": PG_SERVER_SETTINGS}
    engine = create_async_engine(
        async_database_url(database_url),
        # The JSON columns (addresses, headers, event data) are read and written for every
        # email; orjson reads and writes the same values at a third of json's cost.
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
        **kwargs,
    )
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, durable commits, and BEGIN IMMEDIATE so that writers queue on the lock.

    A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    another connection wrote meanwhile; taking the write lock up front lets busy_timeout
    queue writers instead (this is how claims stay one-writer-at-a-time on SQLite).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error."""
    async with sessionmaker.begin() as session:
        yield session


def create_side_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine | None:
    """PostgreSQL connections for the protections' side writes (rate-limit buckets and
    quota reservations): single autocommitted statements that must
    be visible to other requests at once and must not hold a row lock until the
    request commits. ``synchronous_commit=off`` is safe for them: a request's own commit
    flushes the WAL up to itself, which includes every side write made before it.
    None on SQLite, whose one writer at a time makes the request's own transaction do."""
    if database_url.startswith("sqlite"):
        return None
    return create_async_engine(
        async_database_url(database_url),
        # No overflow: a side statement holds its connection for one round trip, so a
        # request waits a moment for one rather than opening (and closing) its own.
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"synchronous_commit": "off"}},
    )
