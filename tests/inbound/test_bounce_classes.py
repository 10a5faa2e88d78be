"""Inbound DSNs of every class, over SMTP to the listener as ``posthouse serve`` runs it:
the Bounce event and the delivery carry the class, and only a hard bounce suppresses."""

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.models import Delivery, Event, Suppression
from tests.helpers import wait_until
from tests.inbound.conftest import Sent
from tests.inbound.test_listener import smtp

POSTFIX_STATUS = "Status: 5.1.1"
POSTFIX_DIAGNOSTIC = (
    "Diagnostic-Code: smtp; 550 5.1.1 <$recipient>: Recipient address rejected:\n"
    "    User unknown in virtual mailbox table"
)

# (Status, Diagnostic-Code, class, subclass, bounce_type, bounce_subtype)
DSNS = [
    (
        "5.1.1",
        "smtp; 550 5.1.1 <joe@example.com>: Recipient address rejected: User unknown",
        "hard",
        "no_mailbox",
        "Permanent",
        "NoEmail",
    ),
    ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "soft", "mailbox_full", "Transient", "MailboxFull"),
    (
        "5.7.1",
        "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
        "zen.spamhaus.org",
        "block",
        "ip_blocklisted",
        "Transient",
        "Blocked",
    ),
    (
        "5.7.26",
        "smtp; 550 5.7.26 Unauthenticated email from yourstore.example is not accepted "
        "due to domain's DMARC policy",
        "auth",
        "dmarc",
        "Transient",
        "AuthFailure",
    ),
    (
        "5.7.1",
        "smtp; 554 5.7.1 Message rejected as spam",
        "content",
        "spam",
        "Transient",
        "ContentRejected",
    ),
    (
        "5.4.3",
        "X-Postfix; Temporary DNS failure for mx.mailhost.example",
        "infrastructure",
        "dns",
        "Transient",
        "General",
    ),
    ("5.0.0", "smtp; 554 Transaction failed", "unknown", "unknown", "Undetermined", "General"),
]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, embedded_worker=True)
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.parametrize(
    ("status", "diagnostic", "klass", "subclass", "bounce_type", "bounce_subtype"), DSNS
)
async def test_a_dsn_of_each_class(
    settings: Settings,
    sent: Sent,
    sessionmaker: async_sessionmaker[AsyncSession],
    status: str,
    diagnostic: str,
    klass: str,
    subclass: str,
    bounce_type: str,
    bounce_subtype: str,
) -> None:
    async def delivered() -> bool:
        # The embedded worker may hold the delivery still: a DSN is about mail sent.
        async with sessionmaker() as session:
            delivery = await session.get(Delivery, sent.delivery.id)
            return delivery is not None and delivery.status == "sent"

    await wait_until(delivered)
    raw = sent.sample("postfix_dsn").decode()
    diagnostic_line = POSTFIX_DIAGNOSTIC.replace("$recipient", sent.delivery.recipient)
    diagnostic_line = diagnostic_line.replace("\n", "\r\n")
    assert POSTFIX_STATUS in raw
    assert diagnostic_line in raw
    raw = raw.replace(POSTFIX_STATUS, f"Status: {status}").replace(
        diagnostic_line, f"Diagnostic-Code: {diagnostic}"
    )

    client = await smtp(settings)
    errors, reply = await client.sendmail("", [sent.verp], raw.encode())
    await client.quit()

    assert errors == {}
    assert "attributed" in reply
    async with sessionmaker() as session:
        [event] = list(await session.scalars(select(Event).where(Event.type == "Bounce")))
        delivery = await session.get(Delivery, sent.delivery.id)
        suppressed = list(await session.scalars(select(Suppression.address)))
    data = event.data
    assert (data["class"], data["subclass"]) == (klass, subclass)
    assert (data["bounce_type"], data["bounce_subtype"]) == (bounce_type, bounce_subtype)
    assert delivery is not None
    assert (delivery.status, delivery.failure_class, delivery.failure_subclass) == (
        "bounced",
        klass,
        subclass,
    )
    assert suppressed == ([sent.delivery.recipient] if klass == "hard" else [])
