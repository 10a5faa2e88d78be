"""Faults of the api with real processes: `posthouse api` killed mid-request while it
holds an Idempotency-Key, an api process dying under uvicorn's supervisor, and the
database going away and coming back."""

import asyncio
import os
import re
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from tests.conftest import PG_URL, SenderTokens, make_workspace_key, multipart
from tests.processes import ApiProcess, Process
from tests.protections.support import message_count, payload
from tests.smtp_server import free_port
from tests.tcp_proxy import TcpProxy

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
            path = make_url(self.settings.database_url).database
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


class TestDatabaseOutage:
    @pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server to lose and find again")
    async def test_503_in_the_native_shape_with_retry_after_then_recovery(
        self,
        sender: SenderTokens,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        processes: list[Process],
        tmp_path: Path,
    ) -> None:
        url = make_url(settings.database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.up()
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        api = ApiProcess(
            settings.model_copy(update={"database_url": proxied}), tmp_path, "api", workers=1
        )
        processes.append(api)
        try:
            await api.started()
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                assert (await client.post(**_send(sender))).status_code == 202
                await proxy.down()  # the database restarts

                during = [await client.post(**_send(sender)) for _ in range(20)]
                health = await client.get("/healthz")

                await proxy.up()
                recovered = None
                for _ in range(100):
                    recovered = await client.post(**_send(sender))
                    if recovered.status_code != 503:
                        break
                    await asyncio.sleep(0.1)
        finally:
            await proxy.down()

        for response in during:
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/json"
            assert response.headers["Retry-After"] == "5"
            assert response.json() == {
                "status": 503,
                "message": "The service is temporarily unavailable; try again shortly",
            }
        assert health.status_code == 503
        assert recovered is not None
        assert recovered.status_code == 202, recovered.text
        assert await message_count(sessionmaker) == 2
        log = api.text()
        assert "Traceback" not in log
        reports = [line for line in log.splitlines() if "database unavailable" in line]
        assert 1 <= len(reports) <= 5, log
        assert all(" WARNING posthouse.db: " in line for line in reports), reports


class TestDatabaseUnreachable:
    @pytest.fixture
    def unreachable(self, settings: Settings, tmp_path: Path) -> Settings:
        """The app configured for a database that is not there."""
        if PG_URL:
            dead = make_url(settings.database_url).set(port=free_port())
            database_url = dead.render_as_string(False)
        else:
            database_url = f"sqlite+aiosqlite:///{tmp_path}/missing/posthouse.db"
        return settings.model_copy(update={"database_url": database_url})

    async def test_every_front_door_answers_503_in_its_shape(
        self,
        unreachable: Settings,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        app = create_app(unreachable)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                send = await client.post(**_send(sender, "k9"))
                listing = await client.get("/api/v1/suppressions", headers=admin)
                health = await client.get("/healthz")

        for response in (send, listing):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert response.json()["status"] == 503
        assert health.status_code == 503


def _server_children(parent: int) -> list[int]:
    """The api processes uvicorn's supervisor started (not multiprocessing's helpers)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


class TestApiProcessDeath:
    async def test_a_killed_api_process_is_logged_as_a_warning_and_replaced(
        self, settings: Settings, processes: list[Process], tmp_path: Path
    ) -> None:
        api = ApiProcess(settings, tmp_path, "api", workers=2)
        processes.append(api)
        await api.started()

        async def two_children() -> bool:
            return len(_server_children(api.process.pid)) == 2

        await _poll(two_children, within=60)
        victim = _server_children(api.process.pid)[0]
        os.kill(victim, signal.SIGKILL)

        async def reported() -> bool:
            return f"api process {victim} was killed by SIGKILL" in api.text()

        await _poll(reported, within=60)
        [line] = [line for line in api.text().splitlines() if f"api process {victim}" in line]
        assert " WARNING posthouse.api: " in line
        replacement = int(line.rsplit("started process ", 1)[1].split()[0])
        assert replacement != victim
        # On a busy machine uvicorn may take a slow-starting child for a hung one and
        # replace it again (logged the same way): wait for two children, not this one.
        await _poll(two_children, within=60)
        await api.started(within=60)
        assert api.stop() == 0
