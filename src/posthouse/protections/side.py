"""Side writes: statements that must commit on their own, outside the request's
transaction, so other requests see them at once and no row stays locked until the
request commits (rate-limit buckets, quota reservations).

The api makes a pool for them on PostgreSQL (db.engine.create_side_engine) and passes it
explicitly (``AcceptContext.side_engine`` -> ``SubmitOptions.side_engine``). Without one
(SQLite, whose writers take turns anyway, or a service called outside a request) the
same statements run in the caller's transaction, with the same results: only
concurrency differs.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An autocommit connection of a side engine."""
    async with engine.connect() as side:
        yield side
