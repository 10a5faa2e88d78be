"""Opens, clicks and attachment opens through the real app, delivered to a real SMTP
server: every hit is an event with the right data on the right delivery."""

import uuid

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Event, Workspace
from posthouse.delivery.worker import Worker
from posthouse.sending.ids import parse_reference_id
from posthouse.tracking import service as tracking_service
from posthouse.tracking.tokens import TokenKind, TokenSigner
from tests.conftest import SenderTokens
from tests.helpers import count
from tests.smtp_server import SmtpServer
from tests.tracking.conftest import (
    FIREFOX,
    delivered_long_ago,
    delivery_of,
    events_of,
    html_of,
    paths,
    received,
    send,
    text_of,
)

Sessionmaker = async_sessionmaker[AsyncSession]
BROWSER = {"User-Agent": FIREFOX}


class TestOpensAndClicks:
    async def test_pixel_and_link_hits_become_events_with_their_data(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        reference = await send(client, sender, trackOpens=True, trackClicks="html")
        await worker.run_until_idle()
        await delivered_long_ago(sessionmaker)
        html = html_of(received(smtp_server, "alice@example.com"))
        [pixel] = paths(html, "t/o")
        first, second = paths(html, "t/c")

        opened = await client.get(pixel, headers=BROWSER)
        clicked = await client.get(first, headers=BROWSER)
        again = await client.get(second, headers=BROWSER)

        assert opened.status_code == 200
        assert opened.headers["content-type"] == "image/gif"
        assert opened.headers["cache-control"].startswith("no-store")
        assert opened.content.startswith(b"GIF89a")
        assert clicked.status_code == 302
        assert clicked.headers["location"] == "https://shop.example/orders/1?utm=mail&x=2"
        assert again.headers["location"] == "https://shop.example/help"
        assert "set-cookie" not in clicked.headers
        delivery = await delivery_of(sessionmaker, "alice@example.com")
        hits = await events_of(sessionmaker, "Open", "Click")
        assert [(e.type, e.data.get("url")) for e in hits] == [
            ("Open", None),
            ("Click", "https://shop.example/orders/1?utm=mail&x=2"),
            ("Click", "https://shop.example/help"),
        ]
        for event in hits:
            assert event.delivery_id == delivery.id
            assert event.message_id == parse_reference_id(reference)
            assert event.data["ip"] == "127.0.0.1"
            assert event.data["user_agent"] == FIREFOX
            assert (event.data["machine"], event.data["machine_reason"]) == (False, None)
        async with sessionmaker() as session:
            engagement = await tracking_service.engagement(
                session, message_id=parse_reference_id(reference)
            )
        assert (engagement.open_count, engagement.click_count) == (1, 2)
        assert engagement.first_open_at == engagement.last_open_at == hits[0].occurred_at
        assert engagement.first_click_at == hits[1].occurred_at
        assert engagement.last_click_at == hits[2].occurred_at

    async def test_links_are_left_alone_in_mail_that_did_not_ask(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        await send(client, sender, to=["alice@example.com", "bob@example.com"])
        await worker.run_until_idle()

        alice = received(smtp_server, "alice@example.com")
        bob = received(smtp_server, "bob@example.com")
        assert "https://shop.example/help" in html_of(alice)
        assert "/t/" not in html_of(alice) + text_of(alice)
        assert "List-Unsubscribe" not in alice
        # Transactional mail is private by default: every recipient gets the same bytes.
        assert alice.as_bytes() == bob.as_bytes()

    async def test_the_workspace_default_applies_when_the_message_does_not_say(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        async with sessionmaker.begin() as session:
            await session.execute(update(Workspace).values(track_opens=True, track_clicks="both"))
        await send(client, sender, to=["alice@example.com"])
        await send(client, sender, to=["bob@example.com"], trackOpens=False, trackClicks="none")
        await worker.run_until_idle()

        alice = received(smtp_server, "alice@example.com")
        bob = received(smtp_server, "bob@example.com")
        assert len(paths(html_of(alice), "t/o")) == 1
        assert len(paths(text_of(alice), "t/c")) == 2
        assert "/t/" not in html_of(bob)

    async def test_text_links_are_tracked_when_asked(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await send(client, sender, trackClicks="text")
        await worker.run_until_idle()

        mail = received(smtp_server, "alice@example.com")
        assert paths(html_of(mail), "t/c") == []
        assert len(paths(text_of(mail), "t/c")) == 2
        assert "help@shop.example" in text_of(mail)

    async def test_a_redirect_goes_only_to_a_recorded_target(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        settings: Settings,
    ) -> None:
        await send(client, sender, to=["alice@example.com"], trackClicks="html", trackOpens=True)
        await send(client, sender, to=["bob@example.com"], body="<p>No links</p>")
        await worker.run_until_idle()
        html = html_of(received(smtp_server, "alice@example.com"))
        link = paths(html, "t/c")[0]
        token = link.rsplit("/", 1)[1]
        bob = await delivery_of(sessionmaker, "bob@example.com")
        genuine = tracking_service.signer(settings)

        tampered = link[:-1] + ("a" if link[-1] != "a" else "b")
        attempts = [
            tampered,
            "/t/c/" + token.upper()[:-2],
            # A genuine token for a position nothing was recorded at.
            "/t/c/" + genuine.sign(TokenKind.CLICK, bob.id, 0),
            # Another kind's genuine token on the click route.
            "/t/c/" + paths(html, "t/o")[0].rsplit("/", 1)[1],
            # Signed with a key posthouse does not have.
            "/t/c/" + TokenSigner(("not ours",)).sign(TokenKind.CLICK, bob.id, 0),
            "/t/c/" + "x" * 65,
            "/t/o/" + token,
            # A genuine pixel token of a delivery that does not exist.
            "/t/o/" + genuine.sign(TokenKind.OPEN, uuid.uuid4()),
        ]
        for path in attempts:
            response = await client.get(path, headers=BROWSER)
            assert response.status_code == 404, path
            assert "location" not in response.headers
        assert await count(sessionmaker, Event) == 2  # the two Delivery events only


class TestMachineHits:
    async def test_scanners_and_proxies_are_flagged_and_left_out_of_human_counts(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        reference = await send(client, sender, trackOpens=True, trackClicks="html")
        await worker.run_until_idle()
        html = html_of(received(smtp_server, "alice@example.com"))
        [pixel] = paths(html, "t/o")
        first, second = paths(html, "t/c")

        # A security gateway follows every link as the message arrives.
        await client.get(first, headers=BROWSER)
        head = await client.head(second, headers=BROWSER)
        await client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})
        await delivered_long_ago(sessionmaker)
        await client.get(first, headers=BROWSER)

        assert head.status_code == 302
        hits = await events_of(sessionmaker, "Open", "Click")
        assert [(e.type, e.data["machine"], e.data["machine_reason"]) for e in hits] == [
            ("Click", True, "scanner_timing"),
            ("Click", True, "head_request"),
            ("Open", True, "apple_mpp"),
            ("Click", False, None),
        ]
        async with sessionmaker() as session:
            engagement = await tracking_service.engagement(
                session, message_id=parse_reference_id(reference)
            )
        assert (engagement.open_count, engagement.click_count, engagement.machine_count) == (
            0,
            1,
            3,
        )


class TestAttachmentOpens:
    async def test_a_tracked_attachment_is_served_through_its_link_and_each_fetch_recorded(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        pdf = b"%PDF-1.4 invoice " * 100
        files = [("Rechnung März.pdf", pdf, "application/pdf")]
        await send(client, sender, trackAttachments=True, files=files)
        await worker.run_until_idle()
        await delivered_long_ago(sessionmaker)
        mail = received(smtp_server, "alice@example.com")
        assert list(mail.iter_attachments()) == []
        [link] = paths(html_of(mail), "t/a")
        assert paths(text_of(mail), "t/a") == [link]

        first = await client.get(link, headers=BROWSER)
        second = await client.get(link, headers=BROWSER)
        forged = await client.get(link[:-1] + ("a" if link[-1] != "a" else "b"))

        assert first.status_code == second.status_code == 200
        assert first.content == pdf
        assert first.headers["content-type"] == "application/pdf"
        assert first.headers["content-disposition"] == (
            "attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"
        )
        assert first.headers["x-content-type-options"] == "nosniff"
        assert forged.status_code == 404
        hits = await events_of(sessionmaker, "Click")
        assert [e.data["attachment"] for e in hits] == ["Rechnung März.pdf"] * 2
        assert all(e.data["machine"] is False for e in hits)

    async def test_an_untracked_attachment_has_no_link(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
        settings: Settings,
    ) -> None:
        await send(client, sender, files=[("a.pdf", b"%PDF", "application/pdf")])
        await worker.run_until_idle()
        delivery = await delivery_of(sessionmaker, "alice@example.com")
        token = tracking_service.signer(settings).sign(TokenKind.ATTACHMENT, delivery.id, 0)

        response = await client.get(f"/t/a/{token}")

        assert response.status_code == 404
        assert [
            a.get_filename() for a in received(smtp_server, "alice@example.com").iter_attachments()
        ] == ["a.pdf"]


class TestValidation:
    async def test_unknown_click_modes_and_unsafe_redirects_are_400_and_nothing_is_stored(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: Sessionmaker
    ) -> None:
        from tests.conftest import multipart
        from tests.helpers import NOTHING_STORED, stored_rows

        for options in (
            {"trackClicks": "always"},
            {"trackOpens": "yes"},
            {"unsubscribeRedirectUrl": "javascript:alert(1)"},
            {"unsubscribeRedirectUrl": "https://shop.example/bye\r\nSet-Cookie: x=1"},
            {"unsubscribeRedirectUrl": "/relative"},
        ):
            payload = {
                "from": sender.email,
                "to": ["alice@example.com"],
                "subject": "s",
                "body": "<p>b</p>",
                **options,
            }
            response = await client.post(
                "/api/v1/emails", headers=sender.headers, **multipart(payload)
            )
            assert response.status_code == 400, (options, response.text)
            assert set(response.json()) == {"status", "message"}
        assert await stored_rows(sessionmaker) == NOTHING_STORED


class TestPersonalisedAndTracked:
    async def test_each_recipient_is_sent_to_the_link_rendered_for_them(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        body = '<p><a href="https://shop.example/orders/{{ order }}">Your order</a></p>'
        await send(
            client,
            sender,
            to=["alice@example.com", "bob@example.com"],
            body=body,
            trackClicks="html",
            variables={"order": "0"},
            recipientVariables={
                "alice@example.com": {"order": "A-1"},
                "bob@example.com": {"order": "B-2"},
            },
        )
        await worker.run_until_idle()
        await delivered_long_ago(sessionmaker)

        for recipient, order in (("alice@example.com", "A-1"), ("bob@example.com", "B-2")):
            [link] = paths(html_of(received(smtp_server, recipient)), "t/c")
            response = await client.get(link, headers=BROWSER)
            assert response.headers["location"] == f"https://shop.example/orders/{order}"
