"""Seed 003's X-STes-Autotext, -SigningDomain, -ReturnPathDomain and -TrackingDomain,
honoured end to end: the mail as a real SMTP server receives it, never carrying them."""

import re
from email.message import EmailMessage
from typing import Any

import dkim
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.conftest import make_workspace_key
from tests.dialects.sendclean.conftest import Account, add_template
from tests.dns_server import DnsServer
from tests.domains.conftest import dns_server, publish_json, txt_lookup  # noqa: F401
from tests.helpers import NOTHING_STORED, settle, stored_rows
from tests.smtp_server import Received, SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
PUBLIC_URL = "https://posthouse.test"
IMAGE = "iVBORw0KGgo="  # base64 of a PNG signature


@pytest.fixture
def settings(settings: Settings, dns_server: DnsServer) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={"public_url": PUBLIC_URL, "dns_resolvers": [dns_server.address]}
    )


def mail(**message: Any) -> dict[str, Any]:
    return {
        "subject": "Order shipped",
        "from_email": "message.from_email@example.com",
        "to": [{"email": "ada@example.com"}],
        "html": '<p>Your order is <a href="https://shop.example/o/1">on its way</a></p>',
        **message,
    }


async def send_mail(client: httpx.AsyncClient, account: Account, **message: Any) -> httpx.Response:
    return await client.post(
        "/messages/sendMail", json={**account.credentials, "message": mail(**message)}
    )


async def add_domains(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, server: DnsServer, *names: str
) -> None:
    admin = await make_workspace_key(sessionmaker)
    for name in names:
        added = await client.post("/api/v1/domains", headers=admin, json={"name": name})
        assert added.status_code == 201, added.text
        publish_json(server, added.json())


async def delivered(worker: Worker, sessionmaker: Sessionmaker, smtp: SmtpServer) -> Received:
    await settle(worker, sessionmaker)
    [received] = smtp.received
    message = received.message()
    assert not [name for name in message if name.lower().startswith("x-stes")]
    return received


def content_types(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


@pytest.mark.parametrize(
    ("autotext", "images", "expected"),
    [
        ("yes", False, ["multipart/alternative", "text/plain", "text/html"]),
        ("no", False, ["text/html"]),
        ("NO", True, ["multipart/related", "text/html", "image/png"]),
    ],
)
async def test_autotext_no_sends_the_html_without_a_text_part(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    autotext: str,
    images: bool,
    expected: list[str],
) -> None:
    image = [{"type": "image/png", "name": "logo", "content": IMAGE}] if images else []
    response = await send_mail(client, account, headers={"X-STes-Autotext": autotext}, images=image)

    assert response.status_code == 200, response.text
    received = await delivered(worker, sessionmaker, smtp_server)
    assert content_types(received.message()) == expected


async def test_autotext_no_for_a_template_without_a_text_part(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    template_id = await add_template(sessionmaker)
    message = mail(
        template_id=template_id,
        dynamic_value={"NAME": "Ada", "Email": "help@example.com"},
        headers={"X-STes-Autotext": "no"},
    )
    del message["html"]
    response = await client.post(
        "/messages/sendTemplate", json={**account.credentials, "message": message}
    )

    assert response.status_code == 200, response.text
    received = (await delivered(worker, sessionmaker, smtp_server)).message()
    assert content_types(received) == ["text/html"]
    assert "Hi Ada" in str(received.get_body(("html",)).get_content())  # type: ignore[union-attr]


async def test_signing_domain_signs_as_that_domain(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    await add_domains(client, sessionmaker, dns_server, "example.com", "brand.example")

    response = await send_mail(client, account, headers={"X-STes-SigningDomain": "brand.example"})

    assert response.status_code == 200, response.text
    received = await delivered(worker, sessionmaker, smtp_server)
    signature = received.message()["DKIM-Signature"]
    assert re.search(r"\bd=brand\.example;", signature)
    assert dkim.verify(received.data, dnsfunc=txt_lookup(dns_server))


async def test_return_path_domain_is_the_envelope_senders(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    await add_domains(client, sessionmaker, dns_server, "example.com", "brand.example")

    response = await send_mail(
        client, account, headers={"X-STes-ReturnPathDomain": "brand.example"}
    )

    assert response.status_code == 200, response.text
    received = await delivered(worker, sessionmaker, smtp_server)
    assert re.fullmatch(r"b-[0-9a-z]{26}-[a-z2-7]{10}@bounces\.brand\.example", received.mail_from)


async def test_tracking_domain_is_the_links_host(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    await add_domains(client, sessionmaker, dns_server, "example.com")
    headers = {
        "X-STes-TrackingDomain": "links.example.com",
        "X-STes-TrackOpen": "yes",
        "X-STes-TrackClick": "html",
    }

    response = await send_mail(client, account, headers=headers)

    assert response.status_code == 200, response.text
    received = (await delivered(worker, sessionmaker, smtp_server)).message()
    html = str(received.get_body(("html",)).get_content())  # type: ignore[union-attr]
    hosts = re.findall(r'(?:href|src)="(https?://[^/"]+)/t/[oc]/', html)
    assert hosts == ["https://links.example.com", "https://links.example.com"]
    click = re.search(r"https://links\.example\.com(/t/c/[a-z2-7]+)", html)
    assert click is not None
    followed = await client.get(click.group(1))
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://shop.example/o/1"


async def test_a_domain_control_given_twice_is_refused(
    client: httpx.AsyncClient,
    account: Account,
    sessionmaker: Sessionmaker,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    await add_domains(client, sessionmaker, dns_server, "example.com")
    headers = {"X-STes-SigningDomain": "example.com", "x-stes-signingdomain": "example.com"}

    response = await send_mail(client, account, headers=headers)

    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "code": -1,
        "name": "ValidationError",
        "message": "message.headers.x-stes-signingdomain is given twice",
    }
    assert await stored_rows(sessionmaker) == NOTHING_STORED
