"""Bounce classes through the real app, worker and SMTP server (issue 21): only hard bounces
suppress and count toward the bounce rate; a block defers with a per-destination backoff,
is stored once and shown, and ends at the destination's next accepted delivery."""

import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import Delivery, DestinationBlock, Event
from posthouse.delivery.worker import Worker
from posthouse.workspaces import service as workspaces
from tests.conftest import SenderTokens
from tests.helpers import deliveries, settle
from tests.protections.support import api_sees_workspace_changes, send, set_workspace, suppressions
from tests.protections.support import workspace as workspace_row
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]

# Issue 21's replies: none of them says anything about the recipient.
NOT_THE_RECIPIENT = [
    (
        "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "block",
        "ip_blocklisted",
    ),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", "block", "ip_blocklisted"),
    ("554 5.7.1 Message rejected due to the sending MTA's poor reputation", "block", "reputation"),
    (
        "550 5.7.26 Unauthenticated email from yourstore.example is not accepted due to domain's "
        "DMARC policy",
        "auth",
        "dmarc",
    ),
    ("554 5.7.1 Message rejected as spam", "content", "spam"),
]


@pytest.fixture
def block_action() -> str:
    return "defer"


@pytest.fixture
def settings(settings: Settings, block_action: str) -> Settings:
    return settings.model_copy(update={"block_action": block_action, "block_backoff_seconds": 30.0})


async def _send_all(client: httpx.AsyncClient, sender: SenderTokens, to: list[str]) -> None:
    for recipient in to:
        response = await send(client, sender, [recipient])
        assert response.status_code == 202, response.text


async def _bounce_data(sessionmaker: Sessionmaker) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(Event).where(Event.type == "Bounce"))
        return [e.data for e in rows]


class TestOnlyHardBouncesSuppressAndCount:
    @pytest.mark.parametrize("block_action", ["fail"])
    @pytest.mark.parametrize(("reply", "klass", "subclass"), NOT_THE_RECIPIENT)
    async def test_ten_refusals_that_are_not_about_the_recipient_suppress_and_suspend_nothing(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
        reply: str,
        klass: str,
        subclass: str,
    ) -> None:
        # The settings: ten such replies in a row used to suspend the workspace.
        await set_workspace(sessionmaker, rate_min_volume=5, max_bounce_rate=0.2)
        recipients = [f"good{i}@example.com" for i in range(10)]
        smtp_server.handler.rcpt_replies.extend([reply] * 10)
        await _send_all(client, sender, recipients)

        await settle(worker, sessionmaker)

        failed = await deliveries(sessionmaker)
        assert {(d.status, d.failure_class, d.failure_subclass) for d in failed} == {
            ("bounced", klass, subclass)
        }
        assert await suppressions(sessionmaker) == []
        assert (await workspace_row(sessionmaker)).suspended_at is None
        data = await _bounce_data(sessionmaker)
        assert len(data) == 10
        assert {(d["class"], d["subclass"], d["bounce_type"]) for d in data} == {
            (klass, subclass, "Transient")
        }
        await api_sees_workspace_changes()
        again = await send(client, sender, recipients[:1])
        assert again.status_code == 202, again.text

    async def test_hard_bounces_still_suppress_and_suspend(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await set_workspace(sessionmaker, rate_min_volume=5, max_bounce_rate=0.2)
        # Four delivered, then two hard bounces: 2 of 6 is over 0.2.
        await _send_all(client, sender, [f"ok{i}@example.com" for i in range(4)])
        await settle(worker, sessionmaker)
        smtp_server.handler.rcpt_replies.extend(
            ["550 5.1.1 The email account that you tried to reach does not exist."] * 2
        )
        await _send_all(client, sender, ["gone1@example.com", "gone2@example.com"])

        await settle(worker, sessionmaker)

        assert [s.address for s in await suppressions(sessionmaker)] == [
            "gone1@example.com",
            "gone2@example.com",
        ]
        assert (await workspace_row(sessionmaker)).suspension_reason == "high bounce rate"
        data = await _bounce_data(sessionmaker)
        assert {(d["class"], d["bounce_type"], d["bounce_subtype"]) for d in data} == {
            ("hard", "Permanent", "NoEmail")
        }


class TestBlocksDefer:
    async def test_a_block_defers_and_holds_back_the_destination_but_no_other(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING, logger="posthouse.delivery.blocks")
        smtp_server.handler.rcpt_replies.append(NOT_THE_RECIPIENT[1][0])
        await _send_all(client, sender, ["first@example.com"])
        await worker.run_until_idle()
        # Later mail to the same destination is not even offered; another domain's is.
        await _send_all(client, sender, ["second@example.com", "third@example.com"])
        await _send_all(client, sender, ["other@elsewhere.example"])
        await worker.run_until_idle()

        rows = {d.recipient: d for d in await deliveries(sessionmaker)}
        assert [r.rcpt_tos for r in smtp_server.handler.received] == [["other@elsewhere.example"]]
        for recipient in ("first@example.com", "second@example.com", "third@example.com"):
            row = rows[recipient]
            assert (row.status, row.failure_class, row.failure_subclass) == (
                "deferred",
                "block",
                "ip_blocklisted",
            )
        assert rows["second@example.com"].last_smtp_reply.startswith(
            "4.7.0 held back: example.com blocks our mail since"
        )
        assert rows["other@elsewhere.example"].status == "sent"
        assert await suppressions(sessionmaker) == []
        # Logged once for the destination and its backoff period, not per message.
        logged = [r for r in caplog.records if "blocks our mail" in r.getMessage()]
        assert len(logged) == 1
        async with sessionmaker() as session:
            delays = list(await session.scalars(select(Event).where(Event.type == "DeliveryDelay")))
            report = await workspaces.report(session, name="acme")
        assert {(e.data["class"], e.data.get("destination")) for e in delays} == {
            ("block", "example.com")
        }
        [block] = report["blocks"]
        assert block["destination"] == "example.com"
        assert block["sendingDomain"] == "yourstore.example"
        assert block["reply"] == NOT_THE_RECIPIENT[1][0]

    async def test_the_backoff_ends_and_an_accepted_delivery_clears_the_block(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        # Long enough for the first run to end before the retry is due, even on a busy
        # machine; short enough for the test.
        worker._blocks.backoff_seconds = 1.0
        smtp_server.handler.rcpt_replies.append(NOT_THE_RECIPIENT[0][0])
        await _send_all(client, sender, ["first@example.com"])
        await worker.run_until_idle()
        async with sessionmaker() as session:
            assert len(list(await session.scalars(select(DestinationBlock)))) == 1

        await settle(worker, sessionmaker)

        [row] = await deliveries(sessionmaker)
        assert (row.status, row.failure_class) == ("sent", None)
        async with sessionmaker() as session:
            assert list(await session.scalars(select(DestinationBlock))) == []

    async def test_a_block_that_outlasts_the_queue_fails_as_transient_with_its_class(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        worker._blocks.backoff_seconds = 0.05
        worker._blocks.max_backoff_seconds = 0.05
        smtp_server.handler.rcpt_replies.extend([NOT_THE_RECIPIENT[2][0]] * 100)
        response = await send(client, sender, ["first@example.com"])
        assert response.status_code == 202
        await _expire_soon(sessionmaker)

        await settle(worker, sessionmaker)

        [row] = await deliveries(sessionmaker)
        assert (row.status, row.failure_class, row.failure_subclass) == (
            "bounced",
            "block",
            "reputation",
        )
        [data] = await _bounce_data(sessionmaker)
        assert (data["class"], data["bounce_type"], data["bounce_subtype"]) == (
            "block",
            "Transient",
            "Blocked",
        )
        assert await suppressions(sessionmaker) == []


class TestRetriesThatRanOut:
    async def test_a_4xx_until_the_queue_lifetime_ends_reads_transient(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        smtp_server.handler.rcpt_replies.extend(["451 4.7.1 Please try again later"] * 100)
        response = await send(client, sender, ["later@example.com"])
        assert response.status_code == 202
        await _expire_soon(sessionmaker)

        await settle(worker, sessionmaker)

        [row] = await deliveries(sessionmaker)
        assert (row.status, row.failure_class) == ("bounced", "soft")
        [data] = await _bounce_data(sessionmaker)
        assert (data["bounce_type"], data["class"]) == ("Transient", "soft")
        assert await suppressions(sessionmaker) == []


async def _expire_soon(sessionmaker: Sessionmaker) -> None:
    """Let the queue lifetime of every delivery end in half a second."""
    async with sessionmaker.begin() as session:
        await session.execute(update(Delivery).values(expires_at=utcnow() + timedelta(seconds=0.5)))
