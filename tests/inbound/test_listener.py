"""The inbound SMTP listener, as ``posthouse serve`` runs it, over a real SMTP session."""

from collections.abc import AsyncIterator

import aiosmtplib
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.models import Delivery, Domain, Event, InboundReport, Message, Workspace
from posthouse.delivery.worker import Worker
from posthouse.domains.dns import split_host_port
from tests.conftest import SenderTokens, multipart
from tests.helpers import wait_until
from tests.inbound.conftest import RETURN_PATH_DOMAIN, Sent
from tests.smtp_server import SmtpServer


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

    async def test_a_bounce_to_the_return_path_domain_a_message_asked_for_is_recorded(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
        return_path_domain: str,
    ) -> None:
        # Another domain of the workspace, whose return-path domain the message names.
        async with sessionmaker.begin() as session:
            workspace = await session.scalar(select(Workspace).where(Workspace.name == "acme"))
            assert workspace is not None
            session.add(
                Domain(
                    workspace_id=workspace.id,
                    name="brand.example",
                    return_path_domain="bounces.brand.example",
                )
            )
        payload = {
            "from": sender.email,
            "to": ["bob@mailhost.example"],
            "subject": "Your order",
            "body": "<p>Thanks</p>",
            "returnPathDomain": "brand.example",
        }
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
        assert response.status_code == 202, response.text
        await worker.run_until_idle()

        async def sent_once() -> bool:
            # This app's own worker may be the one that sent it.
            return len(smtp_server.received) == 1

        await wait_until(sent_once)
        [mail] = smtp_server.received
        assert mail.mail_from.endswith("@bounces.brand.example")
        async with sessionmaker() as session:
            delivery, message = (
                await session.execute(select(Delivery, Message).join(Message))
            ).one()
        raw = Sent(delivery, message, mail.mail_from).sample(
            "postfix_dsn", return_path_domain="bounces.brand.example"
        )

        client_smtp = await smtp(settings)
        errors, reply = await client_smtp.sendmail("", [mail.mail_from], raw)
        await client_smtp.quit()

        assert errors == {}
        assert "attributed" in reply
        async with sessionmaker() as session:
            events = list(await session.scalars(select(Event).where(Event.type == "Bounce")))
        assert [e.delivery_id for e in events] == [delivery.id]
