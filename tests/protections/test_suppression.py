"""The suppression list: automatic entries from hard bounces and complaints, refusal at
submit, and the worker's re-check at send time."""

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import Delivery, Event
from posthouse.delivery.worker import Worker
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.protections import suppression
from posthouse.protections.suppression import SuppressionReason
from posthouse.sending.ids import parse_reference_id
from tests.conftest import SenderTokens
from tests.protections.support import (
    message_count,
    send,
    set_workspace,
    suppressions,
    workspace,
)
from tests.smtp_server import SmtpServer


async def _suppress(
    sessionmaker: async_sessionmaker[AsyncSession], address: str, **kwargs: object
) -> None:
    ws = await workspace(sessionmaker)
    async with sessionmaker.begin() as session:
        await suppression.add(session, workspace_id=ws.id, address=address, **kwargs)  # type: ignore[arg-type]


async def _deliveries(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Delivery]:
    async with sessionmaker() as session:
        return {d.recipient: d for d in await session.scalars(select(Delivery))}


async def _event_types(
    sessionmaker: async_sessionmaker[AsyncSession], delivery: Delivery
) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Event.type).where(Event.delivery_id == delivery.id).order_by(Event.occurred_at)
        )
        return list(rows)


class TestSubmit:
    async def test_every_recipient_suppressed_is_refused_with_422_naming_them(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await _suppress(sessionmaker, "alice@example.com")
        await _suppress(sessionmaker, "bob@EXAMPLE.com", reason=SuppressionReason.UNSUBSCRIBE)

        response = await send(client, sender, ["alice@example.com"], cc=["bob@Example.COM"])

        assert response.status_code == 422
        body = response.json()
        assert body["status"] == 422
        assert "alice@example.com" in body["message"]
        assert body["suppressed"] == ["alice@example.com", "bob@example.com"]
        assert await message_count(sessionmaker) == 0

    async def test_some_suppressed_others_go_and_the_response_names_the_suppressed(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await _suppress(sessionmaker, "alice@example.com")

        response = await send(client, sender, ["alice@example.com", "carol@example.com"])

        assert response.status_code == 202
        assert response.json()["suppressed"] == ["alice@example.com"]
        await worker.run_until_idle()
        assert [r.rcpt_tos for r in smtp_server.received] == [["carol@example.com"]]

    async def test_suppressed_recipients_do_not_count_against_the_quota(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=1)
        await _suppress(sessionmaker, "alice@example.com")

        response = await send(client, sender, ["alice@example.com", "carol@example.com"])
        after = await send(client, sender, ["dave@example.com"])

        assert response.status_code == 202
        assert response.json()["suppressed"] == ["alice@example.com"]
        assert list(await _deliveries(sessionmaker)) == ["carol@example.com"]
        assert after.json()["message"] == "Monthly e-mail quota exceeded"

    async def test_an_expired_entry_no_longer_suppresses(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await _suppress(sessionmaker, "alice@example.com", expires_at=utcnow() - timedelta(1))

        response = await send(client, sender, ["alice@example.com"])

        assert response.status_code == 202
        assert "suppressed" not in response.json()

    async def test_another_workspaces_suppression_does_not_apply(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        from tests.conftest import make_sender

        await make_sender(sessionmaker, "news@other.example", workspace="other")
        other = await workspace(sessionmaker, "other")
        async with sessionmaker.begin() as session:
            await suppression.add(session, workspace_id=other.id, address="alice@example.com")

        assert (await send(client, sender, ["alice@example.com"])).status_code == 202


class TestWorkerRecheck:
    async def test_an_address_suppressed_after_submission_is_rejected_not_sent(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await send(client, sender, ["alice@example.com", "carol@example.com"])
        assert response.status_code == 202
        await _suppress(sessionmaker, "alice@example.com")

        await worker.run_until_idle()

        assert [r.rcpt_tos for r in smtp_server.received] == [["carol@example.com"]]
        deliveries = await _deliveries(sessionmaker)
        assert deliveries["alice@example.com"].status == "rejected"
        assert deliveries["alice@example.com"].attempts == 0
        assert await _event_types(sessionmaker, deliveries["alice@example.com"]) == ["Reject"]
        detail = await client.get(
            f"/api/v1/emails/{response.json()['referenceId']}", headers=sender.headers
        )
        statuses = {r["email"]: r["status"] for r in detail.json()["recipients"]}
        assert statuses == {"alice@example.com": "rejected", "carol@example.com": "sent"}


class TestAutomaticEntries:
    async def test_a_hard_bounce_suppresses_the_recipient_and_later_sends_are_refused(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        smtp_server.handler.rcpt_replies.append("550 5.1.1 <gone@example.com>: no such user")
        assert (await send(client, sender, ["gone@example.com"])).status_code == 202

        await worker.run_until_idle()

        [entry] = await suppressions(sessionmaker)
        assert (entry.address, entry.reason) == ("gone@example.com", "hard_bounce")
        async with sessionmaker() as session:
            bounce = await session.scalar(select(Event).where(Event.type == "Bounce"))
        assert bounce is not None
        assert entry.source_event_id == bounce.id
        again = await send(client, sender, ["gone@example.com"])
        assert again.status_code == 422
        assert again.json()["suppressed"] == ["gone@example.com"]

    async def test_a_temporary_failure_does_not_suppress(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        smtp_server.handler.rcpt_replies.append("451 4.3.0 try again later")
        assert (await send(client, sender, ["busy@example.com"])).status_code == 202

        await worker.run_until_idle()

        assert await suppressions(sessionmaker) == []

    async def test_a_complaint_suppresses_once_even_when_ingested_twice(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        response = await send(client, sender, ["angry@example.com"])
        message_id = parse_reference_id(response.json()["referenceId"])
        delivery = (await _deliveries(sessionmaker))["angry@example.com"]
        complaint = events_service.NewEvent(
            workspace_id=delivery.workspace_id,
            message_id=message_id,  # type: ignore[arg-type]
            delivery_id=delivery.id,
            type=EventType.COMPLAINT,
            occurred_at=utcnow(),
            dedupe_key="arf:abc",
            data={"feedback_type": "abuse"},
        )

        for _ in range(2):
            async with sessionmaker.begin() as session:
                await events_service.ingest(session, [complaint])

        [entry] = await suppressions(sessionmaker)
        assert (entry.address, entry.reason) == ("angry@example.com", "complaint")
        async with sessionmaker() as session:
            stored = list(await session.scalars(select(Event).where(Event.type == "Complaint")))
        assert len(stored) == 1
        assert entry.source_event_id == stored[0].id
