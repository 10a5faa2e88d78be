"""Rate limits: token buckets per client IP and per key, shared by every api process.

The buckets live in the database (rate_limit_bucket), each refilled and spent by one
atomic statement outside the request's transaction: the limit holds across processes,
and no request's own transaction ever waits on a bucket row.

A process takes tokens from a fast bucket a few at a time (a lease of LEASE_SECONDS'
worth of its rate) and spends them locally, so a busy api does not write the same row on
every request. The shared limit then holds to within LEASE_SECONDS of rate per process;
slow buckets (fewer than two tokens per lease, e.g. 10 requests/s per IP) are spent one
token per request, exactly.
"""

import hashlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from posthouse.db import dialect
from posthouse.protections.repositories.rate_limit import BucketRequest, RateLimitRepository

LEASE_SECONDS = 0.05
# Leased tokens not spent within this long are dropped (the bucket refilled meanwhile).
LEASE_LIFETIME = 1.0


@dataclass(frozen=True)
class Limit:
    bucket: str  # e.g. "ip:203.0.113.9" or "key:<digest>"
    per_second: float
    burst_seconds: float

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_second * self.burst_seconds)

    @property
    def lease(self) -> int:
        return max(1, min(math.floor(self.per_second * LEASE_SECONDS), math.floor(self.capacity)))


@dataclass(frozen=True)
class RateLimitState:
    """The most constrained bucket after this request, as the RateLimit-* headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass
class _Lease:
    tokens: float  # taken from the shared bucket, not spent yet
    shared_left: float  # what the shared bucket held after the take
    taken_at: float  # time.monotonic()


def key_bucket(credential: str) -> str:
    """A bucket per presented key, named by a digest so no secret is stored."""
    return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:40]


def ip_bucket(address: str) -> str:
    return "ip:" + address[:190]


class RateLimiter:
    """One per api process: the leases it holds."""

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}

    async def take(self, engine: AsyncEngine, *, limits: list[Limit]) -> RateLimitState | None:
        """Spend one request from every limit's bucket; None when no limit applies."""
        if not limits:
            return None
        clock = time.monotonic()
        leases = {limit.bucket: self._leases.get(limit.bucket) for limit in limits}
        wanted = [
            limit
            for limit in limits
            if (lease := leases[limit.bucket]) is None
            or lease.tokens < 1
            or clock - lease.taken_at > LEASE_LIFETIME
        ]
        if wanted:
            async with _autocommit(engine) as connection:
                taken = await RateLimitRepository(connection).take(
                    [
                        BucketRequest(limit.bucket, limit.per_second, limit.capacity, limit.lease)
                        for limit in wanted
                    ],
                    now=time.time(),
                )
            for limit in wanted:
                granted, left = taken[limit.bucket]
                leases[limit.bucket] = self._leases[limit.bucket] = _Lease(granted, left, clock)
        allowed = all(lease is not None and lease.tokens >= 1 for lease in leases.values())
        if allowed:
            for lease in leases.values():
                assert lease is not None
                lease.tokens -= 1
        return _state(limits, leases, allowed=allowed)


def _state(
    limits: list[Limit], leases: dict[str, "_Lease | None"], *, allowed: bool
) -> RateLimitState:
    def left(limit: Limit) -> float:
        lease = leases[limit.bucket]
        assert lease is not None
        return lease.shared_left + max(0.0, lease.tokens)

    tightest = min(limits, key=lambda limit: left(limit) / limit.capacity)
    tokens = left(tightest)
    # The next request succeeds once every bucket has refilled to one token.
    waits = [math.ceil((1 - left(limit)) / limit.per_second) for limit in limits]
    return RateLimitState(
        allowed=allowed,
        limit=math.floor(tightest.capacity),
        remaining=max(0, math.floor(tokens)),
        reset_seconds=math.ceil(max(0.0, tightest.capacity - tokens) / tightest.per_second),
        retry_after=max([1, *waits]),
    )


@asynccontextmanager
async def _autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Where the buckets are spent: a side engine's connection (already autocommit), or
    on SQLite a transaction that commits on leaving (one writer at a time anyway)."""
    if dialect.is_sqlite(engine):
        async with engine.begin() as connection:
            yield connection
        return
    async with engine.connect() as connection:
        yield connection
