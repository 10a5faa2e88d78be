"""Engagement fixtures: the app with a public URL and a stub DNS server, and helpers that
send through the native API, deliver to the real SMTP server and read the links back."""

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import Delivery, Event
from posthouse.delivery.worker import Worker
from posthouse.domains.dns import split_host_port
from tests.conftest import SenderTokens, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import MAIL_HOST
from tests.helpers import wait_until
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
PUBLIC_URL = "https://track.posthouse.test"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
BODY = (
    '<p>Hello! <a href="https://shop.example/orders/1?utm=mail&amp;x=2">Your order</a>, '
    '<a href="https://shop.example/help">help</a>, '
    '<a href="mailto:help@shop.example">write</a>.</p>'
)


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, dns_server: DnsServer) -> Settings:
    return settings.model_copy(
        update={
            "public_url": PUBLIC_URL,
            "dns_resolvers": [dns_server.address],
            "dns_timeout_seconds": 0.3,
            "mail_hostname": MAIL_HOST,
        }
    )


async def send(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    *,
    to: list[str] | None = None,
    files: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    **options: Any,
) -> str:
    payload = {
        "from": sender.email,
        "to": to or ["alice@example.com"],
        "subject": "Your order",
        "body": BODY,
        **options,
    }
    response = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart(payload, files)
    )
    assert response.status_code == 202, response.text
    return str(response.json()["referenceId"])


def received(smtp_server: SmtpServer, recipient: str) -> EmailMessage:
    [mail] = [m for m in smtp_server.received if recipient in m.rcpt_tos]
    return mail.message()


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def paths(body: str, kind: str) -> list[str]:
    """The request paths of the tracking URLs of ``kind`` (t/o, t/c, t/a, u) in a body."""
    return [
        m[0][len(PUBLIC_URL) :]
        for m in re.finditer(rf"{re.escape(PUBLIC_URL)}/{kind}/[a-z2-7]+", body)
    ]


async def delivery_of(sessionmaker: Sessionmaker, recipient: str) -> Delivery:
    async with sessionmaker() as session:
        found = await session.scalar(select(Delivery).where(Delivery.recipient == recipient))
    assert found is not None
    return found


async def delivered_long_ago(sessionmaker: Sessionmaker) -> None:
    """As if the copies arrived an hour ago: later clicks are people, not scanners."""
    async with sessionmaker.begin() as session:
        await session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(hours=1)))


async def events_of(sessionmaker: Sessionmaker, *types: str) -> list[Event]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Event).where(Event.type.in_(types)).order_by(Event.received_at, Event.id)
        )
        return list(rows)


async def deliver(worker: Worker) -> None:
    await worker.run_until_idle()


@pytest.fixture
async def embedded_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The embedded app (``posthouse serve``): its worker delivers and its inbound
    listener takes mail to the List-Unsubscribe mailto address. A test class uses it by
    overriding ``app`` with it."""
    application = create_app(settings, embedded_worker=True)
    async with application.router.lifespan_context(application):
        yield application


async def delivered_mailto(smtp_server: SmtpServer, recipient: str = "alice@example.com") -> str:
    """The List-Unsubscribe mailto address of the copy the embedded worker delivers to
    ``recipient``, once it has."""

    async def delivered() -> bool:
        return any(recipient in m.rcpt_tos for m in smtp_server.received)

    await wait_until(delivered, within=20)
    header = received(smtp_server, recipient)["List-Unsubscribe"]
    return str(header.split(",")[1].strip().strip("<>")[len("mailto:") :])


def inbound_smtp(settings: Settings) -> aiosmtplib.SMTP:
    """An SMTP client for the embedded app's inbound listener."""
    host, port = split_host_port(settings.inbound_bind, default_port=2525)
    return aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
