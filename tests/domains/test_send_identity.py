"""A message's own identity, through the native API, the worker and a real SMTP server:
no text part made from its HTML (autoText), another domain's DKIM signature
(signingDomain), its bounces to another domain (returnPathDomain) and its links on
another host (trackingDomain). Only the workspace's own domains may be named."""

import re
from email.message import EmailMessage
from typing import Any

import dkim
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Delivery, Domain, Event, Message, Workspace
from posthouse.delivery.envelope import parse_verp
from posthouse.delivery.worker import Worker
from posthouse.inbound.service import accepts_recipient, process_report
from tests.conftest import SenderTokens, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import publish_json, txt_lookup
from tests.helpers import NOTHING_STORED, settle, stored_rows
from tests.inbound.conftest import Sent
from tests.smtp_server import Received, SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
PUBLIC_URL = "https://posthouse.test"
BRAND = "brand.example"  # a second domain of the sender's workspace
BODY = '<p>Hello! <a href="https://shop.example/orders/1">Your order</a></p>'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


async def send(client: httpx.AsyncClient, sender: SenderTokens, **options: Any) -> httpx.Response:
    payload = {
        "from": sender.email,
        "to": ["alice@example.com"],
        "subject": "Your order",
        "body": BODY,
        **options,
    }
    return await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))


async def add_domain(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    dns_server: DnsServer,
    name: str,
    workspace: str = "acme",
) -> None:
    """A domain of the workspace with its active key, its records in DNS."""
    admin = await make_workspace_key(sessionmaker, workspace)
    added = await client.post("/api/v1/domains", headers=admin, json={"name": name})
    assert added.status_code == 201, added.text
    publish_json(dns_server, added.json())


async def delivered(worker: Worker, sessionmaker: Sessionmaker, smtp: SmtpServer) -> Received:
    await settle(worker, sessionmaker)
    [mail] = smtp.received
    return mail


def content_types(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


def dkim_domain(data: bytes) -> str:
    found = re.search(rb"DKIM-Signature:.*?\bd=([^;\s]+)", data, re.S)
    assert found is not None
    return found.group(1).decode()


async def statements_of(app: FastAPI, request: Any) -> int:
    """How many statements the database ran for ``request`` (an awaitable send)."""
    ran: list[str] = []

    def count(*args: Any) -> None:
        ran.append(args[2])

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = await request
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 202, response.text
    return len(ran)


async def test_the_domain_check_costs_a_statement_only_when_a_domain_is_named(
    app: FastAPI,
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    dns_server: DnsServer,
) -> None:
    await add_domain(client, sessionmaker, dns_server, "yourstore.example")
    await send(client, sender)  # caches warm: the key, the sender, the domain

    plain = await statements_of(app, send(client, sender))
    without_text = await statements_of(app, send(client, sender, autoText=False))
    named = await statements_of(
        app,
        send(client, sender, signingDomain="yourstore.example", trackingDomain="yourstore.example"),
    )

    assert without_text == plain
    assert named == plain + 1


class TestAutoText:
    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({}, ["multipart/alternative", "text/plain", "text/html"]),
            ({"autoText": True}, ["multipart/alternative", "text/plain", "text/html"]),
            ({"autoText": False}, ["text/html"]),
            # Tracked copies are built per recipient: still no text part.
            (
                {"autoText": False, "trackOpens": True, "trackClicks": "both"},
                ["text/html"],
            ),
        ],
    )
    async def test_an_html_only_email_gets_a_text_part_unless_asked_not_to(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        options: dict[str, Any],
        expected: list[str],
    ) -> None:
        response = await send(client, sender, **options)

        assert response.status_code == 202, response.text
        message = (await delivered(worker, sessionmaker, smtp_server)).message()
        assert content_types(message) == expected
        assert "Your order" in str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]

    async def test_a_text_given_is_sent_whatever_auto_text_says(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await send(client, sender, autoText=False, text="Your order is on its way")

        assert response.status_code == 202, response.text
        message = (await delivered(worker, sessionmaker, smtp_server)).message()
        assert content_types(message) == ["multipart/alternative", "text/plain", "text/html"]
        plain = message.get_body(("plain",))
        assert plain is not None
        assert plain.get_content().strip() == "Your order is on its way"

    @pytest.mark.parametrize("personalised", [False, True])
    async def test_rendered_content_honours_it_once_and_per_recipient(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        personalised: bool,
    ) -> None:
        # Values for everyone render once at accept time; values per recipient render
        # each copy in the worker (templates.personalise).
        own = {"recipientVariables": {"alice@example.com": {"name": "Alice"}}}
        response = await send(
            client,
            sender,
            body="<p>Hello {{ name }}</p>",
            variables={"name": "there"},
            autoText=False,
            **(own if personalised else {}),
        )

        assert response.status_code == 202, response.text
        message = (await delivered(worker, sessionmaker, smtp_server)).message()
        assert content_types(message) == ["text/html"]
        html = str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
        assert ("Hello Alice" if personalised else "Hello there") in html
        async with sessionmaker() as session:
            stored = (await session.scalars(select(Message))).one()
        assert (stored.auto_text, stored.text) == (False, None)


class TestSigningDomain:
    async def test_the_copy_is_signed_as_the_domain_named_and_verifies_through_dns(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
    ) -> None:
        await add_domain(client, sessionmaker, dns_server, "yourstore.example")
        await add_domain(client, sessionmaker, dns_server, BRAND)

        response = await send(client, sender, signingDomain="Brand.Example")

        assert response.status_code == 202, response.text
        mail = await delivered(worker, sessionmaker, smtp_server)
        assert mail.data.startswith(b"DKIM-Signature: ")
        assert dkim_domain(mail.data) == BRAND
        assert dkim.verify(mail.data, dnsfunc=txt_lookup(dns_server))
        # The From domain's own bounce address: only the signature changed.
        assert mail.mail_from.endswith("@bounces.yourstore.example")

    async def test_without_it_the_from_domain_signs(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
    ) -> None:
        await add_domain(client, sessionmaker, dns_server, "yourstore.example")
        await add_domain(client, sessionmaker, dns_server, BRAND)

        response = await send(client, sender)

        assert response.status_code == 202, response.text
        mail = await delivered(worker, sessionmaker, smtp_server)
        assert dkim_domain(mail.data) == "yourstore.example"
        assert dkim.verify(mail.data, dnsfunc=txt_lookup(dns_server))

    async def test_a_domain_without_an_active_key_is_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: Sessionmaker
    ) -> None:
        async with sessionmaker.begin() as session:
            workspace = await session.scalar(select(Workspace).where(Workspace.name == "acme"))
            assert workspace is not None
            session.add(
                Domain(workspace_id=workspace.id, name=BRAND, return_path_domain=f"b.{BRAND}")
            )

        response = await send(client, sender, signingDomain=BRAND)

        assert response.status_code == 400
        assert response.json()["message"] == (
            "signingDomain 'brand.example' has no active DKIM key"
        )
        assert await stored_rows(sessionmaker) == NOTHING_STORED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signingDomain", BRAND),
        ("returnPathDomain", BRAND),
        ("trackingDomain", BRAND),
        ("trackingDomain", f"track.{BRAND}"),
        ("returnPathDomain", f"bounces.{BRAND}"),
    ],
)
async def test_another_workspaces_domain_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    dns_server: DnsServer,
    field: str,
    value: str,
) -> None:
    await add_domain(client, sessionmaker, dns_server, BRAND, workspace="other")

    response = await send(client, sender, **{field: value})

    assert response.status_code == 400
    assert response.json()["message"] == f"{field} {value!r} is not a domain of this account"
    assert await stored_rows(sessionmaker) == NOTHING_STORED


@pytest.mark.parametrize("value", ["not a domain", "brand.example\r\nX-Evil: 1", "a" * 300, 7])
async def test_a_value_that_is_no_domain_name_is_refused(
    client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: Sessionmaker, value: object
) -> None:
    response = await send(client, sender, returnPathDomain=value)

    assert response.status_code == 400
    assert response.json()["message"].startswith("returnPathDomain")
    assert await stored_rows(sessionmaker) == NOTHING_STORED


class TestReturnPathDomain:
    @pytest.mark.parametrize("named", [BRAND, f"bounces.{BRAND}"])
    async def test_the_envelope_sender_and_its_bounces_use_the_domain_named(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
        settings: Settings,
        named: str,
    ) -> None:
        await add_domain(client, sessionmaker, dns_server, "yourstore.example")
        await add_domain(client, sessionmaker, dns_server, BRAND)

        response = await send(client, sender, returnPathDomain=named)

        assert response.status_code == 202, response.text
        mail = await delivered(worker, sessionmaker, smtp_server)
        # Bounces come back to the domain's return-path domain (its MX is this MTA).
        local, domain = mail.mail_from.split("@")
        assert domain == f"bounces.{BRAND}"
        assert local.startswith("b-")
        secret = settings.secret_key.get_secret_value()
        async with sessionmaker() as session:
            delivery, message = (
                await session.execute(select(Delivery, Message).join(Message))
            ).one()
            # The inbound listener takes mail for it and names the delivery from it.
            assert await accepts_recipient(session, address=mail.mail_from)
        assert parse_verp(mail.mail_from, secret=secret) == delivery.id
        # The From domain still signs.
        assert dkim_domain(mail.data) == "yourstore.example"

        async with sessionmaker.begin() as session:
            outcome = await process_report(
                session,
                mail_from="",
                rcpt_tos=[mail.mail_from],
                raw=Sent(delivery, message, mail.mail_from).sample(
                    "postfix_dsn", return_path_domain=f"bounces.{BRAND}"
                ),
                secret=secret,
            )
        assert outcome.status == "attributed"
        async with sessionmaker() as session:
            bounce = await session.scalar(select(Event).where(Event.type == "Bounce"))
        assert bounce is not None
        assert bounce.delivery_id == delivery.id


class TestTrackingDomain:
    @pytest.mark.parametrize("host", ["yourstore.example", "track.yourstore.example"])
    async def test_links_pixel_and_unsubscribe_use_the_host_and_still_count(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: Sessionmaker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
        host: str,
    ) -> None:
        await add_domain(client, sessionmaker, dns_server, "yourstore.example")

        response = await send(
            client,
            sender,
            trackingDomain=host,
            trackOpens=True,
            trackClicks="html",
            unsubscribe=True,
        )

        assert response.status_code == 202, response.text
        message = (await delivered(worker, sessionmaker, smtp_server)).message()
        html = str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
        base = f"https://{host}"
        links = re.findall(r"https://[^/\"]+/t/[oc]/[a-z2-7]+", html)
        assert len(links) == 2
        assert all(link.startswith(base + "/t/") for link in links)
        assert PUBLIC_URL not in html
        assert message["List-Unsubscribe"].startswith(f"<{base}/u/")

        # The hit handlers check the token, whatever host the request came to.
        pixel = next(link for link in links if "/t/o/" in link)
        click = next(link for link in links if "/t/c/" in link)
        opened = await client.get(pixel[len(base) :])
        clicked = await client.get(click[len(base) :])
        assert opened.status_code == 200
        assert clicked.status_code == 302
        assert clicked.headers["location"] == "https://shop.example/orders/1"
        async with sessionmaker() as session:
            types = sorted(
                await session.scalars(select(Event.type).where(Event.type.in_(["Open", "Click"])))
            )
        assert types == ["Click", "Open"]
