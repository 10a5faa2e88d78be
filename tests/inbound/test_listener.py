"""The inbound SMTP listener, as ``posthouse serve`` runs it, over a real SMTP session."""

from collections.abc import AsyncIterator

import aiosmtplib
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.models import Event, InboundReport
from posthouse.domains.dns import split_host_port
from tests.inbound.conftest import RETURN_PATH_DOMAIN, Sent


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The embedded app: API, worker and inbound listener in one process."""
    application = create_app(settings, embedded_worker=True)
    async with application.router.lifespan_context(application):
        yield application


async def smtp(settings: Settings) -> aiosmtplib.SMTP:
    host, port = split_host_port(settings.inbound_bind, default_port=2525)
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=5, start_tls=False)
    await client.connect()
    return client


class TestInboundListener:
    async def test_a_bounce_sent_to_the_verp_address_is_recorded(
        self,
        settings: Settings,
        sent: Sent,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        client = await smtp(settings)
        errors, reply = await client.sendmail("", [sent.verp], sent.sample("postfix_dsn"))
        await client.quit()

        assert errors == {}
        assert "attributed" in reply
        async with sessionmaker() as session:
            events = list(await session.scalars(select(Event).where(Event.type == "Bounce")))
        assert [(e.delivery_id, e.data["bounce_type"]) for e in events] == [
            (sent.delivery.id, "Permanent")
        ]

    async def test_mail_for_other_domains_is_refused(
        self, settings: Settings, return_path_domain: str
    ) -> None:
        client = await smtp(settings)
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail(
                "a@b.example", ["someone@elsewhere.example"], b"Subject: x\r\n\r\nx"
            )
        await client.quit()

        assert refused.value.recipients[0].code == 550

    async def test_an_unattributable_report_is_accepted_and_kept(
        self,
        settings: Settings,
        sent: Sent,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        postmaster = f"postmaster@{RETURN_PATH_DOMAIN}"
        raw = sent.sample(
            "exim",
            verp=postmaster,
            return_path=postmaster,
            message_id="<unknown@elsewhere.example>",
        )

        client = await smtp(settings)
        errors, reply = await client.sendmail("", [postmaster], raw)
        await client.quit()

        assert errors == {}
        assert "unattributed" in reply
        async with sessionmaker() as session:
            kept = list(await session.scalars(select(InboundReport)))
        assert [(r.status, r.rcpt_to) for r in kept] == [("unattributed", postmaster)]
        assert b"Mail delivery failed" in kept[0].raw
