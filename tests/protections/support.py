"""Helpers for the protections' tests: change a workspace, send through the native API."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.models import Message, Suppression, Workspace
from tests.conftest import AUTH_CACHE_SECONDS, SenderTokens, multipart

Sessionmaker = async_sessionmaker[AsyncSession]


async def set_workspace(sessionmaker: Sessionmaker, name: str = "acme", **values: Any) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(update(Workspace).where(Workspace.name == name).values(**values))
    await api_sees_workspace_changes()


async def api_sees_workspace_changes() -> None:
    """Wait until the api's cached credentials carry a change made behind its back."""
    # A little over the TTL: asyncio may wake a timer up to its clock resolution early.
    await asyncio.sleep(AUTH_CACHE_SECONDS + 0.01)


async def workspace(sessionmaker: Sessionmaker, name: str = "acme") -> Workspace:
    async with sessionmaker() as session:
        found = await session.scalar(select(Workspace).where(Workspace.name == name))
        assert found is not None
        return found


async def message_count(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


async def suppressions(sessionmaker: Sessionmaker) -> list[Suppression]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Suppression).order_by(Suppression.address)))


def payload(sender: SenderTokens, to: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "from": sender.email,
        "to": to,
        "subject": extra.pop("subject", "Your order"),
        "body": extra.pop("body", "<p>Thanks</p>"),
        **extra,
    }


async def send(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    to: list[str],
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/api/v1/emails",
        headers={**sender.headers, **(headers or {})},
        **multipart(payload(sender, to, **extra)),
    )
