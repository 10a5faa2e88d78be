"""The monthly quota: per recipient, per calendar month, refused whole, exact under
concurrency."""

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import MonthlyUsage
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens
from tests.protections.support import message_count, send, set_workspace
from tests.smtp_server import SmtpServer

QUOTA_EXCEEDED = {"status": 400, "message": "Monthly e-mail quota exceeded"}


class TestMonthlyQuota:
    async def test_fifty_parallel_sends_against_a_quota_of_ten_accept_exactly_ten(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=10)

        responses = await asyncio.gather(
            *(send(client, sender, [f"user{i}@example.com"]) for i in range(50))
        )

        codes = sorted(r.status_code for r in responses)
        assert codes == [202] * 10 + [400] * 40
        assert all(r.json() == QUOTA_EXCEEDED for r in responses if r.status_code == 400)
        assert await message_count(sessionmaker) == 10

    async def test_counts_recipients_and_refuses_a_send_that_would_exceed_it_whole(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=3)
        first = await send(client, sender, ["a@example.com", "b@example.com"])
        assert first.status_code == 202

        refused = await send(client, sender, ["c@example.com"], cc=["d@example.com"])
        last = await send(client, sender, ["c@example.com"])
        over = await send(client, sender, ["e@example.com"])

        assert refused.status_code == 400
        assert refused.json() == QUOTA_EXCEEDED
        assert last.status_code == 202
        assert over.json() == QUOTA_EXCEEDED
        await worker.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
            "a@example.com",
            "b@example.com",
            "c@example.com",
        ]

    async def test_a_quota_set_mid_month_counts_what_was_sent_before(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        for i in range(2):
            assert (await send(client, sender, [f"early{i}@example.com"])).status_code == 202
        await set_workspace(sessionmaker, monthly_quota=3)

        assert (await send(client, sender, ["third@example.com"])).status_code == 202
        assert (await send(client, sender, ["fourth@example.com"])).json() == QUOTA_EXCEEDED

    async def test_a_new_month_starts_from_zero(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=1)
        last_month = (utcnow().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        workspace_id = await _workspace_id(sessionmaker)
        async with sessionmaker.begin() as session:
            session.add(MonthlyUsage(workspace_id=workspace_id, month=last_month, count=1))

        assert (await send(client, sender, ["new@example.com"])).status_code == 202


async def _workspace_id(sessionmaker: async_sessionmaker[AsyncSession]) -> object:
    from tests.protections.support import workspace

    return (await workspace(sessionmaker)).id
