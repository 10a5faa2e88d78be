"""One-click unsubscribe (RFC 8058, RFC 2369) through the real app: the signed header
pair, the POST, the GET page, the mailto address through the inbound listener, and key
rotation."""

import html
import re
from urllib.parse import urljoin

import dkim
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.models import InboundReport, Suppression
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import add_verified, txt_lookup
from tests.smtp_server import SmtpServer
from tests.tracking.conftest import (
    FIREFOX,
    PUBLIC_URL,
    delivered_long_ago,
    delivered_mailto,
    events_of,
    html_of,
    inbound_smtp,
    paths,
    received,
    send,
)

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
async def signed_domain(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, dns_server: DnsServer
) -> str:
    """The sender's domain, verified, with a DKIM key and a return-path domain."""
    await add_verified(client, dns_server, await make_workspace_key(sessionmaker), DOMAIN)
    return DOMAIN


def unsubscribe_path(header: str) -> str:
    https, mailto = (part.strip().strip("<>") for part in header.split(","))
    assert https.startswith(f"{PUBLIC_URL}/u/")
    assert mailto.startswith("mailto:u-")
    assert mailto.endswith(f"@bounces.{DOMAIN}")
    return https[len(PUBLIC_URL) :]


async def suppressions(sessionmaker: Sessionmaker) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(Suppression).order_by(Suppression.address))
        return [(s.address, s.reason) for s in rows]


class TestOneClick:
    async def test_every_copy_carries_the_pair_inside_the_dkim_signature(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
        signed_domain: str,
    ) -> None:
        await send(client, sender, to=["alice@example.com", "bob@example.com"], unsubscribe=True)
        await worker.run_until_idle()

        headers = set()
        for mail in smtp_server.received:
            message = mail.message()
            headers.add(message["List-Unsubscribe"])
            unsubscribe_path(message["List-Unsubscribe"])
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert dkim.verify(mail.data, dnsfunc=txt_lookup(dns_server))
            signature = dkim.util.parse_tag_value(dkim.rfc822_parse(mail.data)[0][0][1])
            signed = [name.strip() for name in signature[b"h"].split(b":")]
            assert {b"list-unsubscribe", b"list-unsubscribe-post"} <= set(signed)
            tampered = mail.data.replace(
                b"List-Unsubscribe-Post: List-", b"List-Unsubscribe-Post: X-"
            )
            assert not dkim.verify(tampered, dnsfunc=txt_lookup(dns_server))
        assert len(headers) == 2  # signed per delivery

    async def test_a_post_unsubscribes_at_once_and_redirects(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        signed_domain: str,
    ) -> None:
        await send(client, sender, unsubscribeRedirectUrl="https://shop.example/goodbye")
        await worker.run_until_idle()
        path = unsubscribe_path(received(smtp_server, "alice@example.com")["List-Unsubscribe"])

        first = await client.post(path, data=ONE_CLICK, headers={"User-Agent": FIREFOX})
        again = await client.post(path, data=ONE_CLICK)

        assert first.status_code == 303
        assert first.headers["location"] == "https://shop.example/goodbye"
        assert "set-cookie" not in first.headers
        assert again.status_code == 303
        assert await suppressions(sessionmaker) == [("alice@example.com", "unsubscribe")]
        [event] = await events_of(sessionmaker, "Unsubscribe")
        assert event.data["recipient"] == "alice@example.com"
        assert event.data["user_agent"] == FIREFOX
        assert event.data["scope"] == "workspace"
        later = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(
                {"from": sender.email, "to": ["alice@example.com"], "subject": "s", "body": "b"}
            ),
        )
        assert later.status_code == 422

    async def test_a_get_only_shows_a_page_whose_button_posts(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        await send(client, sender, unsubscribe=True, trackClicks="html")
        await worker.run_until_idle()
        await delivered_long_ago(sessionmaker)
        mail = received(smtp_server, "alice@example.com")
        https = mail["List-Unsubscribe"].strip("<>")
        path = https[len(PUBLIC_URL) :]
        # No return-path domain here: the https target alone.
        assert "mailto:" not in mail["List-Unsubscribe"]
        assert path not in "".join(paths(html_of(mail), "t/c"))

        page = await client.get(path)

        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert "alice@example.com" in page.text
        assert await suppressions(sessionmaker) == []
        assert await events_of(sessionmaker, "Unsubscribe") == []

        confirmed = await client.post(path, data=ONE_CLICK)

        assert confirmed.status_code == 200
        assert "Unsubscribed" in confirmed.text
        assert await suppressions(sessionmaker) == [("alice@example.com", "unsubscribe")]

    async def test_the_pages_button_posts_to_the_url_and_then_redirects(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        await send(client, sender, unsubscribeRedirectUrl="https://shop.example/goodbye")
        await worker.run_until_idle()
        https = received(smtp_server, "alice@example.com")["List-Unsubscribe"].strip("<>")

        page = await client.get(https[len(PUBLIC_URL) :])
        [action] = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)"', page.text))
        # What a browser does with the button: the form's action, relative to the page.
        target = urljoin(https, html.unescape(action))
        confirmed = await client.post(target[len(PUBLIC_URL) :], data=fields)

        assert target == https
        assert fields == ONE_CLICK
        assert confirmed.status_code == 303
        assert confirmed.headers["location"] == "https://shop.example/goodbye"
        assert await suppressions(sessionmaker) == [("alice@example.com", "unsubscribe")]

    async def test_an_added_or_changed_header_breaks_the_delivered_signature(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
        signed_domain: str,
    ) -> None:
        await send(
            client,
            sender,
            unsubscribe=True,
            replyTo=["help@shop.example"],
            headers={"X-Campaign": "winter"},
        )
        await worker.run_until_idle()
        [mail] = smtp_server.received
        verify = txt_lookup(dns_server)
        assert dkim.verify(mail.data, dnsfunc=verify)
        end = mail.data.index(b"\r\n\r\n")
        head, body = mail.data[:end], mail.data[end:]

        for added in (
            b"Reply-To: thief@evil.example",
            b"To: someone@evil.example",
            b"Cc: someone@evil.example",
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000",
            b"Message-ID: <other@evil.example>",
            b"In-Reply-To: <other@evil.example>",
            b"References: <other@evil.example>",
            b"Content-Type: text/plain",
            b"MIME-Version: 1.0",
            b"From: thief@evil.example",
            b"Subject: changed",
        ):
            assert not dkim.verify(head + b"\r\n" + added + body, dnsfunc=verify), added
        changed = mail.data.replace(b"X-Campaign: winter", b"X-Campaign: summer")
        assert not dkim.verify(changed, dnsfunc=verify)

    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_a_forged_token_is_404_and_unsubscribes_nobody(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        method: str,
    ) -> None:
        await send(client, sender, unsubscribe=True)
        await worker.run_until_idle()
        path = received(smtp_server, "alice@example.com")["List-Unsubscribe"].strip("<>")
        path = path[len(PUBLIC_URL) :]
        forged = path[:-1] + ("a" if path[-1] != "a" else "b")

        response = await client.request(method, forged, data=ONE_CLICK)

        assert response.status_code == 404
        assert await suppressions(sessionmaker) == []


class TestKeyRotation:
    async def test_links_signed_before_a_rotation_still_work(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        settings: Settings,
    ) -> None:
        await send(client, sender, trackClicks="html", unsubscribe=True)
        await worker.run_until_idle()
        mail = received(smtp_server, "alice@example.com")
        link = paths(html_of(mail), "t/c")[0]
        unsubscribe = mail["List-Unsubscribe"].strip("<>")[len(PUBLIC_URL) :]
        old = settings.secret_key
        rotated = settings.model_copy(
            update={"secret_key": type(old)("a brand new key"), "previous_secret_keys": [old]}
        )
        forgotten = settings.model_copy(update={"secret_key": type(old)("a brand new key")})

        for new_settings, expected in ((forgotten, 404), (rotated, 302)):
            app = create_app(new_settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    assert (await http.get(link)).status_code == expected
                    if expected == 302:
                        assert (await http.post(unsubscribe, data=ONE_CLICK)).status_code == 200
        assert await suppressions(sessionmaker) == [("alice@example.com", "unsubscribe")]


class TestMailto:
    @pytest.fixture
    def app(self, embedded_app: FastAPI) -> FastAPI:
        return embedded_app

    async def test_mail_to_the_mailto_address_unsubscribes_through_the_inbound_listener(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        settings: Settings,
        signed_domain: str,
    ) -> None:
        await send(client, sender, unsubscribe=True)
        mailto = await delivered_mailto(smtp_server)
        local, domain = mailto.split("@")
        forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"

        async with inbound_smtp(settings) as smtp:
            body = b"Subject: unsubscribe\r\n\r\nunsubscribe\r\n"
            _, forged_reply = await smtp.sendmail("alice@example.com", [forged], body)
            _, reply = await smtp.sendmail("alice@example.com", [mailto.upper()], body)

        assert "unattributed" in forged_reply
        assert "attributed" in reply
        assert await suppressions(sessionmaker) == [("alice@example.com", "unsubscribe")]
        [event] = await events_of(sessionmaker, "Unsubscribe")
        assert event.data["source"] == "mailto"
        async with sessionmaker() as session:
            reports = list(await session.scalars(select(InboundReport.status)))
        assert sorted(reports) == ["attributed", "unattributed"]
