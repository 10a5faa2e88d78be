"""Received reports become events on the right delivery, once; the rest is kept."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Delivery, Event, InboundReport, Suppression
from posthouse.delivery.worker import Worker
from posthouse.inbound.service import InboundOutcome, process_report
from tests.conftest import SenderTokens
from tests.inbound.conftest import RETURN_PATH_DOMAIN, Sent, send_one

Sessionmaker = async_sessionmaker[AsyncSession]


async def receive(
    sessionmaker: Sessionmaker, settings: Settings, raw: bytes, rcpt: str
) -> InboundOutcome:
    async with sessionmaker.begin() as session:
        return await process_report(
            session,
            mail_from="",
            rcpt_tos=[rcpt],
            raw=raw,
            secret=settings.secret_key.get_secret_value(),
        )


async def inbound_events(sessionmaker: Sessionmaker) -> list[Event]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Event).where(Event.type.in_(["Bounce", "Complaint", "DeliveryDelay"]))
        )
        return list(rows)


async def reports(sessionmaker: Sessionmaker) -> list[InboundReport]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(InboundReport)))


async def delivery_status(sessionmaker: Sessionmaker, sent: Sent) -> str:
    async with sessionmaker() as session:
        delivery = await session.get(Delivery, sent.delivery.id)
        assert delivery is not None
        return delivery.status


class TestBounces:
    @pytest.mark.parametrize(
        ("sample", "bounce_type", "subtype", "status"),
        [
            ("postfix_dsn", "Permanent", "NoEmail", "5.1.1"),
            ("exchange_dsn", "Transient", "MailboxFull", "5.2.2"),
            ("qmail", "Permanent", "NoEmail", "5.1.1"),
            ("exim", "Permanent", "NoEmail", "5.1.1"),
            ("exchange_text", "Permanent", "NoEmail", "5.1.1"),
            ("gmail_text", "Permanent", "NoEmail", "5.1.1"),
        ],
    )
    async def test_a_bounce_report_becomes_a_bounce_on_its_delivery(
        self,
        sessionmaker: Sessionmaker,
        settings: Settings,
        sent: Sent,
        sample: str,
        bounce_type: str,
        subtype: str,
        status: str,
    ) -> None:
        outcome = await receive(sessionmaker, settings, sent.sample(sample), sent.verp)

        assert outcome.status == "attributed"
        [event] = await inbound_events(sessionmaker)
        assert event.type == "Bounce"
        assert event.delivery_id == sent.delivery.id
        assert event.message_id == sent.message.id
        expected: dict[str, Any] = {
            "recipient": "bob@mailhost.example",
            "bounce_type": bounce_type,
            "bounce_subtype": subtype,
            "status": status,
        }
        assert {k: event.data[k] for k in expected} == expected
        assert status in event.data["smtp_reply"]
        assert await delivery_status(sessionmaker, sent) == "bounced"

    async def test_a_hard_bounce_suppresses_the_recipient(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        await receive(sessionmaker, settings, sent.sample("postfix_dsn"), sent.verp)

        async with sessionmaker() as session:
            addresses = list(await session.scalars(select(Suppression.address)))
        assert addresses == ["bob@mailhost.example"]

    async def test_a_delay_notice_is_a_delivery_delay_not_a_bounce(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        await receive(sessionmaker, settings, sent.sample("delayed_dsn"), sent.verp)

        [event] = await inbound_events(sessionmaker)
        assert event.type == "DeliveryDelay"
        assert event.data["status"] == "4.4.1"
        assert await delivery_status(sessionmaker, sent) == "sent"

    async def test_the_same_report_twice_is_one_event(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        raw = sent.sample("postfix_dsn")
        first = await receive(sessionmaker, settings, raw, sent.verp)
        again = await receive(sessionmaker, settings, raw, sent.verp)
        # Re-sent by the reporting MTA with a new date: different bytes, same content.
        resent = raw.replace(b"10:00:05 +0000 (UTC)", b"11:30:00 +0000 (UTC)")
        third = await receive(sessionmaker, settings, resent, sent.verp)

        assert (first.status, again.status, third.status) == (
            "attributed",
            "duplicate",
            "attributed",
        )
        assert len(await inbound_events(sessionmaker)) == 1

    async def test_without_verp_the_message_id_and_recipient_attribute_it(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        plain = f"bounces@{RETURN_PATH_DOMAIN}"
        raw = sent.sample("postfix_dsn", verp=plain, return_path=sent.message.from_email)

        outcome = await receive(sessionmaker, settings, raw, plain)

        assert outcome.status == "attributed"
        [event] = await inbound_events(sessionmaker)
        assert event.delivery_id == sent.delivery.id

    async def test_the_message_id_picks_the_recipient_the_report_names(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        settings: Settings,
        return_path_domain: str,
    ) -> None:
        bob, carol = await send_one(
            client,
            sender,
            worker,
            sessionmaker,
            settings,
            ["bob@mailhost.example", "carol@mailhost.example"],
        )
        plain = f"bounces@{return_path_domain}"
        raw = carol.sample("qmail", verp=plain, return_path=carol.message.from_email)

        await receive(sessionmaker, settings, raw, plain)

        [event] = await inbound_events(sessionmaker)
        assert event.delivery_id == carol.delivery.id != bob.delivery.id

    async def test_a_forged_verp_address_touches_nothing_and_is_kept(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        local, domain = sent.verp.split("@")
        forged = f"{local[:-4]}aaaa@{domain}"
        assert forged != sent.verp
        raw = sent.sample("postfix_dsn", verp=forged, return_path=forged)

        outcome = await receive(sessionmaker, settings, raw, forged)

        assert outcome.status == "unattributed"
        assert "forged" in outcome.detail
        assert await inbound_events(sessionmaker) == []
        assert await delivery_status(sessionmaker, sent) == "sent"
        [kept] = await reports(sessionmaker)
        assert (kept.status, kept.raw) == ("unattributed", raw)

    async def test_a_report_about_an_unknown_message_is_kept(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        plain = f"bounces@{RETURN_PATH_DOMAIN}"
        raw = sent.sample(
            "exim", verp=plain, return_path=plain, message_id="<nobody@elsewhere.example>"
        )

        outcome = await receive(sessionmaker, settings, raw, plain)

        assert outcome.status == "unattributed"
        assert await inbound_events(sessionmaker) == []
        [kept] = await reports(sessionmaker)
        assert kept.kind == "bounce"
        assert kept.raw == raw

    async def test_an_auto_reply_is_kept_but_records_nothing(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        outcome = await receive(sessionmaker, settings, sent.sample("vacation"), sent.verp)

        assert outcome.status == "ignored"
        assert await inbound_events(sessionmaker) == []
        assert [r.status for r in await reports(sessionmaker)] == ["ignored"]


class TestComplaints:
    async def test_an_arf_report_becomes_a_complaint(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        outcome = await receive(sessionmaker, settings, sent.sample("arf_abuse"), sent.verp)

        assert outcome.status == "attributed"
        [event] = await inbound_events(sessionmaker)
        assert event.type == "Complaint"
        assert event.delivery_id == sent.delivery.id
        assert event.data["feedback_type"] == "abuse"
        assert event.data["user_agent"] == "SomeGenerator/1.0"
        async with sessionmaker() as session:
            reasons = list(await session.scalars(select(Suppression.reason)))
        assert reasons == ["complaint"]

    async def test_a_redacted_report_is_attributed_by_the_original_message_id(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        fbl = f"fbl@{RETURN_PATH_DOMAIN}"

        outcome = await receive(sessionmaker, settings, sent.sample("arf_redacted"), fbl)

        assert outcome.status == "attributed"
        [event] = await inbound_events(sessionmaker)
        assert (event.type, event.delivery_id) == ("Complaint", sent.delivery.id)

    async def test_the_same_complaint_twice_is_one_event(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        raw = sent.sample("arf_abuse")
        await receive(sessionmaker, settings, raw, sent.verp)
        await receive(sessionmaker, settings, raw.replace(b"12:00:00", b"12:05:00"), sent.verp)

        assert len(await inbound_events(sessionmaker)) == 1

    async def test_a_not_spam_report_is_no_complaint(
        self, sessionmaker: Sessionmaker, settings: Settings, sent: Sent
    ) -> None:
        raw = sent.sample("arf_abuse").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")

        outcome = await receive(sessionmaker, settings, raw, sent.verp)

        assert outcome.status == "ignored"
        assert await inbound_events(sessionmaker) == []
