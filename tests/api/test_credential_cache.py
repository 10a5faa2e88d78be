"""The api reuses a resolved sender key for ``auth_cache_seconds``, never its secret."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import CredentialCache
from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import Workspace
from tests.conftest import SenderTokens, multipart

PAYLOAD = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Hello",
    "body": "<p>Hi</p>",
}
NOT_FOUND = {"status": 404, "message": "Sender email is not found in platform!"}
SUSPENDED = {"status": 400, "message": "API access suspended \u2013 high bounce rate"}


async def _send(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/api/v1/emails", headers=headers, **multipart(PAYLOAD))


async def _suspend(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            update(Workspace)
            .where(Workspace.name == "acme")
            .values(suspended_at=utcnow(), suspension_reason="high bounce rate")
        )


async def test_a_wrong_secret_is_refused_while_the_key_is_cached(
    client: httpx.AsyncClient, sender: SenderTokens
) -> None:
    assert (await _send(client, sender.headers)).status_code == 202

    wrong = {**sender.headers, "X-Api-Secret-Token": sender.secret_token + "x"}
    refused = await _send(client, wrong)

    assert (refused.status_code, refused.json()) == (404, NOT_FOUND)


async def test_a_refused_request_leaves_the_cached_key_usable(
    client: httpx.AsyncClient, sender: SenderTokens
) -> None:
    assert (await _send(client, sender.headers)).status_code == 202
    bad = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart({**PAYLOAD, "to": []})
    )

    again = await _send(client, sender.headers)

    assert bad.status_code == 400
    assert again.status_code == 202


async def test_a_change_behind_the_apis_back_is_seen_once_the_entry_expires(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    assert (await _send(client, sender.headers)).status_code == 202
    await _suspend(sessionmaker)

    await asyncio.sleep(settings.auth_cache_seconds + 0.01)
    refused = await _send(client, sender.headers)

    assert (refused.status_code, refused.json()) == (400, SUSPENDED)


@pytest.fixture
async def uncached_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"auth_cache_seconds": 0}))
    async with application.router.lifespan_context(application):
        yield application


async def test_without_the_cache_a_change_is_seen_at_once(
    uncached_app: FastAPI, sender: SenderTokens, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    transport = httpx.ASGITransport(app=uncached_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await _send(client, sender.headers)).status_code == 202
        await _suspend(sessionmaker)

        refused = await _send(client, sender.headers)

    assert (refused.status_code, refused.json()) == (400, SUSPENDED)


def test_a_full_cache_starts_over_rather_than_growing() -> None:
    cache = CredentialCache(ttl=60, max_entries=2)
    marker = object()
    for lookup in ("a", "b", "c"):
        cache.put(lookup, marker)  # type: ignore[arg-type]

    assert [cache.get(lookup) for lookup in ("a", "b", "c")] == [None, None, marker]
