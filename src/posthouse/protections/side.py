"""Side writes: statements that must commit on their own, outside the request's
transaction, so other requests see them at once and no row stays locked until the
request commits (rate-limit buckets, idempotency claims, quota reservations).

The api provides a pool for them on PostgreSQL (db.engine.create_side_engine, put in
``session.info`` by api.routing.front_door_route). Without one (SQLite, whose writers
take turns anyway, or a service called outside a request) the same statements run in the
caller's transaction, with the same results: only concurrency differs.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession


def side_engine(session: AsyncSession) -> AsyncEngine | None:
    engine = session.info.get("side_engine")
    return engine if isinstance(engine, AsyncEngine) else None


@asynccontextmanager
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An autocommit connection of a side engine."""
    async with engine.connect() as side:
        yield side
