"""Bounce and complaint rates: judged past the minimum volume, suspension refuses sends
and holds queued deliveries, and an operator lifts it."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import Delivery
from posthouse.delivery.worker import Worker
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.sending.ids import parse_reference_id
from posthouse.workspaces import service as workspaces
from tests.conftest import SenderTokens
from tests.protections.support import api_sees_workspace_changes, send, set_workspace, workspace
from tests.smtp_server import SmtpServer

SUSPENDED = {"status": 400, "message": "API access suspended \u2013 high bounce rate"}


async def _send_all(
    client: httpx.AsyncClient, sender: SenderTokens, recipients: list[str]
) -> list[str]:
    ids = []
    for recipient in recipients:
        response = await send(client, sender, [recipient])
        assert response.status_code == 202, response.text
        ids.append(response.json()["referenceId"])
    return ids


async def _statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {d.recipient: d.status for d in await session.scalars(select(Delivery))}


async def _unsuspend(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker.begin() as session:
        await workspaces.update(
            session, name="acme", changes=workspaces.WorkspaceChanges(unsuspend=True)
        )


class TestBounceRate:
    async def test_crossing_the_threshold_past_the_minimum_volume_suspends_and_refuses_sends(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=5, max_bounce_rate=0.2)
        await _send_all(client, sender, [f"ok{i}@example.com" for i in range(3)])
        await worker.run_until_idle()
        assert (await workspace(sessionmaker)).suspended_at is None

        # Rates are judged when a hard bounce or complaint is recorded.
        smtp_server.handler.rcpt_replies.extend(["550 5.1.1 unknown"] * 2)
        await _send_all(client, sender, ["gone1@example.com", "gone2@example.com"])
        await worker.run_until_idle()

        suspended = await workspace(sessionmaker)
        assert suspended.suspended_at is not None
        assert suspended.suspension_reason == "high bounce rate"
        await api_sees_workspace_changes()
        refused = await send(client, sender, ["next@example.com"])
        assert (refused.status_code, refused.json()) == (400, SUSPENDED)

    async def test_below_the_minimum_volume_rates_are_not_judged(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=10, max_bounce_rate=0.05)
        smtp_server.handler.rcpt_replies.extend(["550 5.1.1 unknown"] * 3)
        await _send_all(client, sender, [f"r{i}@example.com" for i in range(5)])

        await worker.run_until_idle()

        assert (await workspace(sessionmaker)).suspended_at is None
        assert (await send(client, sender, ["next@example.com"])).status_code == 202

    async def test_at_the_threshold_is_not_over_it(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=5, max_bounce_rate=0.2)
        await _send_all(client, sender, [f"ok{i}@example.com" for i in range(4)])
        await worker.run_until_idle()
        smtp_server.handler.rcpt_replies.append("550 5.1.1 unknown")
        await _send_all(client, sender, ["gone@example.com"])

        await worker.run_until_idle()

        assert (await workspace(sessionmaker)).suspended_at is None


class TestComplaintRate:
    async def test_a_complaint_over_the_threshold_suspends(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=2, max_complaint_rate=0.1)
        ids = await _send_all(client, sender, ["a@example.com", "b@example.com"])
        await worker.run_until_idle()
        async with sessionmaker() as session:
            delivery = await session.scalar(
                select(Delivery).where(Delivery.message_id == parse_reference_id(ids[0]))
            )
        assert delivery is not None

        async with sessionmaker.begin() as session:
            await events_service.ingest(
                session,
                [
                    events_service.NewEvent(
                        workspace_id=delivery.workspace_id,
                        message_id=delivery.message_id,
                        delivery_id=delivery.id,
                        type=EventType.COMPLAINT,
                        occurred_at=utcnow(),
                        dedupe_key="arf:1",
                    )
                ],
            )

        await api_sees_workspace_changes()
        refused = await send(client, sender, ["c@example.com"])
        assert refused.json() == {
            "status": 400,
            "message": "API access suspended \u2013 high complaint rate",
        }


class TestSuspension:
    async def test_queued_deliveries_are_held_and_sent_once_an_operator_unsuspends(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await _send_all(client, sender, ["waiting@example.com"])
        await set_workspace(
            sessionmaker, suspended_at=utcnow(), suspension_reason="high bounce rate"
        )

        await worker.run_until_idle()

        assert smtp_server.received == []
        assert await _statuses(sessionmaker) == {"waiting@example.com": "held"}

        await _unsuspend(sessionmaker)
        await worker.run_until_idle()

        assert [r.rcpt_tos for r in smtp_server.received] == [["waiting@example.com"]]
        assert await _statuses(sessionmaker) == {"waiting@example.com": "sent"}
        assert (await send(client, sender, ["again@example.com"])).status_code == 202

    async def test_after_unsuspending_the_old_bounces_do_not_suspend_again(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=2, max_bounce_rate=0.2)
        smtp_server.handler.rcpt_replies.extend(["550 5.1.1 unknown"] * 2)
        await _send_all(client, sender, ["x1@example.com", "x2@example.com"])
        await worker.run_until_idle()
        assert (await workspace(sessionmaker)).suspended_at is not None

        await _unsuspend(sessionmaker)
        smtp_server.handler.rcpt_replies.append("550 5.1.1 unknown")
        await _send_all(client, sender, ["x3@example.com"])
        await worker.run_until_idle()

        assert (await workspace(sessionmaker)).suspended_at is None
