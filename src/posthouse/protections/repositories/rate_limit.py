"""SQL for the rate-limit buckets."""

from dataclasses import dataclass

from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningInsert

from posthouse.db import dialect
from posthouse.db.models import RateLimitBucket


def _spend_statement(name: str) -> ReturningInsert[str, float, float]:
    """Upsert buckets: refill by elapsed time, cap at the capacity, then grant the
    requested tokens (``granted`` of the new row), or one if fewer are left, or none; a
    refused request still spends one, down to -1, so hammering does not get through."""
    table = dialect.table_of(RateLimitBucket)
    statement = dialect.insert(name, RateLimitBucket)
    new = statement.excluded
    elapsed = case(
        (new.refilled_at > table.c.refilled_at, new.refilled_at - table.c.refilled_at),
        else_=0.0,
    )
    refilled = table.c.tokens + elapsed * new.rate
    capped = case((refilled > new.capacity, new.capacity), else_=refilled)
    granted = case((capped >= new.granted, new.granted), (capped >= 1, 1.0), else_=0.0)
    refused = case((capped - 1 < -1, -1.0), else_=capped - 1)
    return statement.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "tokens": case((granted > 0, capped - granted), else_=refused),
            "granted": granted,
            "rate": new.rate,
            "capacity": new.capacity,
            "refilled_at": new.refilled_at,
        },
    ).returning(RateLimitBucket.key, RateLimitBucket.tokens, RateLimitBucket.granted)


# Built once: it runs on every request, and compiling it each time costs more than the
# round trip.
_SPEND = {name: _spend_statement(name) for name in dialect.NAMES}


@dataclass(frozen=True)
class BucketRequest:
    key: str
    rate: float
    capacity: float
    tokens: int  # wanted; at most the capacity


class RateLimitRepository:
    """Token buckets in one table, refilled and spent by one statement per request."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def take(
        self, buckets: list[BucketRequest], *, now: float
    ) -> dict[str, tuple[float, float]]:
        """Take tokens from every bucket in one statement: per key, (tokens granted,
        tokens left). Run it in autocommit, so each bucket row is locked only while the
        statement runs."""
        rows = await self.connection.execute(
            _SPEND[dialect.name_of(self.connection)],
            [
                {
                    "key": b.key,
                    "tokens": b.capacity - b.tokens,
                    "rate": b.rate,
                    "capacity": b.capacity,
                    "granted": float(b.tokens),
                    "refilled_at": now,
                }
                for b in buckets
            ],
        )
        return {row.key: (float(row.granted), float(row.tokens)) for row in rows}
