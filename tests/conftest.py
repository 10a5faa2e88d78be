"""Fixtures: a migrated database per test (SQLite, or PostgreSQL when
POSTHOUSE_TEST_DATABASE_URL is set), the real app behind httpx, a real SMTP server."""

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import add_sender
from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.engine import create_engine
from posthouse.db.migrate import upgrade
from posthouse.db.models import Base
from posthouse.delivery.transports.factory import create_transport
from posthouse.delivery.worker import Worker
from posthouse.templates.personalise import Personaliser
from tests.smtp_server import SmtpServer, free_port

PG_URL = os.environ.get("POSTHOUSE_TEST_DATABASE_URL")
# The api reuses a resolved key this long: a workspace changed behind its back (by a
# test, as by an operator or the worker) is seen after it.
AUTH_CACHE_SECONDS = 0.05


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per test process: a SQLite file to copy, or a PostgreSQL database."""
    if PG_URL:
        import psycopg

        base = PG_URL.rsplit("/", 1)
        name = f"{base[1]}_{_worker_id()}"
        # psycopg takes a libpq URL: drop any "+driver" from the scheme.
        admin = re.sub(r"^postgresql\+\w+:", "postgresql:", base[0]) + "/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        url = f"{base[0]}/{name}"
        upgrade(url)
        return url
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return str(path)


@pytest.fixture
async def database_url(database_template: str, tmp_path: Path) -> str:
    """A clean, migrated database for one test."""
    if PG_URL:
        engine = create_engine(database_template, null_pool=True)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        await engine.dispose()
        return database_template
    path = tmp_path / "posthouse.db"
    shutil.copyfile(database_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer, tmp_path: Path) -> Settings:
    """Short timers so retries and leases play out in milliseconds."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        delivery_url=f"smtp://127.0.0.1:{smtp_server.port}",
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        lease_seconds=2.0,
        worker_poll_seconds=0.05,
        smtp_timeout_seconds=5.0,
        require_verified_domains=False,
        rate_limit_per_ip=0,
        rate_limit_per_key=0,
        inbound_bind=f"127.0.0.1:{free_port()}",
        auth_cache_seconds=AUTH_CACHE_SECONDS,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def sessionmaker(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return maker


@pytest.fixture
async def worker(app: FastAPI, settings: Settings) -> AsyncIterator[Worker]:
    transport = create_transport(settings)
    yield Worker(
        sessionmaker=app.state.sessionmaker,
        transport=transport,
        settings=settings,
        recipient_hook=Personaliser(),
    )
    await transport.close()


@dataclass
class SenderTokens:
    email: str
    access_token: str
    secret_token: str
    workspace: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Access-Token": self.access_token, "X-Api-Secret-Token": self.secret_token}


async def make_sender(
    sessionmaker: async_sessionmaker[AsyncSession], email: str, workspace: str = "acme"
) -> SenderTokens:
    async with sessionmaker.begin() as session:
        issued = await add_sender(session, workspace_name=workspace, email=email)
    return SenderTokens(issued.sender.email, issued.access_token, issued.secret_token, workspace)


@pytest.fixture
async def sender(sessionmaker: async_sessionmaker[AsyncSession]) -> SenderTokens:
    return await make_sender(sessionmaker, "no-reply@yourstore.example")


def multipart(
    payload: dict[str, Any] | str, files: list[tuple[str, bytes, str]] = ()
) -> dict[str, Any]:  # type: ignore[assignment]
    """httpx ``files=`` for a seed-000 request: the JSON payload part and attachments."""
    import json

    body = payload if isinstance(payload, str) else json.dumps(payload)
    parts: list[tuple[str, tuple[str | None, Any, str]]] = [
        ("payload", (None, body, "application/json"))
    ]
    parts += [("attachments", (name, data, ctype)) for name, data, ctype in files]
    return {"files": parts}


async def make_workspace_key(
    sessionmaker: async_sessionmaker[AsyncSession],
    workspace: str = "acme",
    scopes: str = "admin send",
) -> dict[str, str]:
    """Headers carrying a fresh workspace key."""
    from posthouse.accounts.service import create_workspace_key

    async with sessionmaker.begin() as session:
        issued = await create_workspace_key(session, workspace_name=workspace, scopes=scopes)
    return {"Authorization": f"Bearer {issued.token}"}
