"""Faults of the api with real processes: `posthouse api` killed mid-request while it
holds an Idempotency-Key, an api process dying under uvicorn's supervisor, and the
database going away and coming back."""

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from tests.conftest import PG_URL, SenderTokens, multipart
from tests.processes import ApiProcess, Process
from tests.protections.support import message_count, payload

_ADVISORY_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
_WAITING_FOR_MESSAGE = (
    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'message'::regclass"
)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def _send(sender: SenderTokens, key: str | None = None) -> dict[str, Any]:
    headers = {**sender.headers, **({"Idempotency-Key": key} if key else {})}
    return {
        "url": "/api/v1/emails",
        "headers": headers,
        **multipart(payload(sender, ["alice@example.com"])),
    }


def _libpq(url: str) -> str:
    return re.sub(r"^postgresql\+\w+:", "postgresql:", url)


async def _pg_count(settings: Settings, query: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(
        _libpq(settings.database_url), autocommit=True
    ) as connection:
        row = await (await connection.execute(query)).fetchone()
        return int(row[0]) if row else 0


async def _poll(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


class _WriteBlocker:
    """Holds the database still, as a long migration or a stuck transaction would: on
    PostgreSQL an exclusive lock on ``message``, on SQLite the one write lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None

    async def hold(self) -> None:
        if PG_URL:
            import psycopg

            self._pg = await psycopg.AsyncConnection.connect(_libpq(self.settings.database_url))
            await self._pg.execute("LOCK TABLE message IN ACCESS EXCLUSIVE MODE")
        else:
            path = self.settings.sqlite_path()
            assert path is not None
            self._sqlite = sqlite3.connect(path, isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")

    async def release(self) -> None:
        if self._pg is not None:
            await self._pg.close()  # rolls the lock back
            self._pg = None
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None


class TestKilledWhileHoldingAnIdempotencyKey:
    async def test_a_retry_after_the_crash_is_answered_at_once_as_a_first_request(
        self,
        sender: SenderTokens,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        processes: list[Process],
        tmp_path: Path,
    ) -> None:
        first = ApiProcess(settings, tmp_path, "api-1")
        processes.append(first)
        await first.started()
        blocker = _WriteBlocker(settings)
        await blocker.hold()
        try:
            async with httpx.AsyncClient(base_url=first.url, timeout=60) as client:
                original = asyncio.create_task(client.post(**_send(sender, "k1")))
                if PG_URL:
                    # The request holds its key and waits for the table.
                    async def waiting() -> bool:
                        return await _pg_count(settings, _WAITING_FOR_MESSAGE) == 1

                    await _poll(waiting, within=30)
                    assert await _pg_count(settings, _ADVISORY_LOCKS) == 1
                else:
                    await asyncio.sleep(1.0)  # the request waits for the write lock
                assert not original.done()
                first.kill()
                with pytest.raises(httpx.TransportError):
                    await original
            if PG_URL:
                # The key is free within about a second of its owner's death, though the
                # table it was waiting for is still locked.
                async def key_free() -> bool:
                    return await _pg_count(settings, _ADVISORY_LOCKS) == 0

                await _poll(key_free, within=5)
        finally:
            await blocker.release()
        second = ApiProcess(settings, tmp_path, "api-2")
        processes.append(second)
        await second.started()

        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            retry = await client.post(**_send(sender, "k1"))
            again = await client.post(**_send(sender, "k1"))

        assert retry.status_code == 202, retry.text
        assert "Idempotency-Replayed" not in retry.headers
        assert again.status_code == 202
        assert again.headers["Idempotency-Replayed"] == "true"
        assert again.json() == retry.json()
        assert await message_count(sessionmaker) == 1
