"""Seed 002's POST /transactional/email/v1/mail: the document's examples and every field,
accepted, stored and delivered to a real SMTP server."""

import base64
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.models import Delivery, Message
from posthouse.delivery.worker import Worker
from posthouse.templates import service as templates_service
from posthouse.templates.rendering import TemplateParts
from tests.dialects.everlytic.conftest import SENDER, URL, Account, mail, make_account
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import Received, SmtpServer

JOE, JOHN, SANDY = "joe@example.com", "john@example.com", "sandy@example.com"


def html_example() -> dict[str, Any]:
    """The document's "Example using HTML provided in the body", as it is written (with
    its trailing comma, legal here), its redacted addresses ("[email protected]") filled in."""
    return {
        "body": {
            "html": "<h1>Hello there, {{recipientName}}, how was the {{sports}} match?</h1>",
            "text": "Hello there, how was the match?",
            "personalisation_fields": {"common_fields": {"sports": "soccer"}},
            "unique_fields": [
                {JOE: {"recipientName": "Mr Joe Bloggs"}},
                {JOHN: {"recipientName": "Johnny boy"}},
            ],
        },
        "options": {"group_name": "Track Engagement", "track_links": True, "track_opens": True},
        "headers": {
            "subject": "Raw HTML Template",
            "from": {"email": SENDER, "name": "Boss"},
            "to": [{"email": JOE, "name": "Joe"}, {"email": JOHN, "name": "John"}],
            "cc": [{"email": SANDY, "name": "Sandy"}],
            "reply_to": {"email": "replies@yourstore.example"},
        },
        "attachments": {"data": [{"filename": "Test.txt", "data": "V2VsbCBkb25lIQ=="}]},
    }


def copy_for(smtp_server: SmtpServer, recipient: str) -> Received:
    [found] = [r for r in smtp_server.received if r.rcpt_tos == [recipient]]
    return found


def html_of(received: Received) -> str:
    part = received.message().get_body(("html",))
    assert part is not None
    return str(part.get_content())


async def delivery_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(Delivery))
        return {row.recipient: str(row.id) for row in rows}


async def only_message(sessionmaker: async_sessionmaker[AsyncSession]) -> Message:
    async with sessionmaker() as session:
        [message] = (await session.scalars(select(Message))).all()
        return message


class TestTheDocumentsExamples:
    async def test_the_html_example_is_personalised_and_delivered_to_every_recipient(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        response = await client.post(URL, json=html_example(), auth=account.auth)

        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["transactions"]
        ids = await delivery_ids(sessionmaker)
        # One transaction per recipient, to before cc, each its delivery's id.
        assert body["transactions"] == [{"id": ids[JOE]}, {"id": ids[JOHN]}, {"id": ids[SANDY]}]

        await worker.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [JOE, JOHN, SANDY]
        joe = copy_for(smtp_server, JOE).message()
        assert joe["Subject"] == "Raw HTML Template"
        assert joe["From"] == f"Boss <{SENDER}>"
        assert joe["To"] == f"Joe <{JOE}>, John <{JOHN}>"
        assert joe["Cc"] == f"Sandy <{SANDY}>"
        assert joe["Reply-To"] == "replies@yourstore.example"
        assert "Hello there, Mr Joe Bloggs, how was the soccer match?" in html_of(
            copy_for(smtp_server, JOE)
        )
        assert "Hello there, Johnny boy, how was the soccer match?" in html_of(
            copy_for(smtp_server, JOHN)
        )
        # The cc has no unique fields: its tag renders empty, as the example implies.
        assert "Hello there, , how was the soccer match?" in html_of(copy_for(smtp_server, SANDY))
        [attachment] = list(joe.iter_attachments())
        assert attachment.get_filename() == "Test.txt"
        assert attachment.get_content() == "Well done!"
        message = await only_message(sessionmaker)
        assert message.tags == ["Track Engagement"]
        assert (message.track_opens, message.track_clicks, message.track_text_clicks) == (
            True,
            True,
            True,
        )

    async def test_the_template_example_as_written_names_its_missing_fields(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        """The document's template example has no template_id (nor body, subject, from):
        by its own rules body.html is then required."""
        response = await client.post(URL, json=template_example(), auth=account.auth)

        assert response.status_code == 412, response.text
        assert response.json()["message"] == {
            "errors": {"headers.from.email": ["The headers.from.email field is required."]}
        }
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_the_template_example_with_a_template_id_sends_the_template(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        template_id = await make_template(sessionmaker, account)
        payload = template_example()
        payload["options"]["template_id"] = template_id

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        assert len(response.json()["transactions"]) == 3
        await worker.run_until_idle()
        joe = copy_for(smtp_server, JOE).message()
        # No From in the request: the workspace's one sender.
        assert joe["From"] == SENDER
        assert joe["Subject"] == "Your order has shipped"
        assert "Order shipped" in html_of(copy_for(smtp_server, JOE))

    async def test_a_template_send_without_from_in_a_workspace_of_two_senders_names_it(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await make_account(sessionmaker, account.workspace, "billing@yourstore.example")
        payload = template_example()
        payload["options"]["template_id"] = await make_template(sessionmaker, account)

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 412
        assert response.json()["message"] == {
            "errors": {"headers.from.email": ["The headers.from.email field is required."]}
        }
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_the_unsubscribe_redirect_example_is_stored_with_its_url(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        payload = {
            "body": {
                "html": "<p>Hi {{name}}</p>",
                "text": "Hi {{name}}",
                "personalisation_fields": {
                    "common_fields": {"name": "there"},
                    "unique_fields": [{JOE: {"name": "Joe"}}],
                },
            },
            "headers": {
                "subject": "News",
                "message_id": "order-1234",
                "from": {"email": SENDER, "name": "Shop"},
                "to": [{"email": JOE, "name": "Joe"}],
                "reply_to": {"email": SENDER, "name": "Shop"},
            },
            "options": {"unsubscribe_redirect_url": "https://shop.example/bye"},
        }

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        message = await only_message(sessionmaker)
        assert message.unsubscribe_redirect_url == "https://shop.example/bye"
        assert message.external_id == "order-1234"


def template_example() -> dict[str, Any]:
    """The document's "Example using a template ID", addresses filled in."""
    return {
        "options": {"group_name": "Track Engagement", "track_links": True, "track_opens": True},
        "headers": {
            "to": [{"email": JOE, "name": "Joe"}, {"email": JOHN, "name": "John"}],
            "cc": [{"email": SANDY, "name": "Sandy"}],
        },
    }


async def make_template(sessionmaker: async_sessionmaker[AsyncSession], account: Account) -> str:
    async with sessionmaker.begin() as session:
        from posthouse.accounts.repository import AccountRepository

        workspace = await AccountRepository(session).workspace_by_name(account.workspace)
        assert workspace is not None
        detail = await templates_service.add_template(
            session,
            workspace_id=workspace.id,
            name="shipped",
            parts=TemplateParts(
                "Your order has shipped", "<h1>Order shipped</h1><p>Thanks</p>", None
            ),
        )
    return templates_service.public_id(detail.template.id)


class TestFields:
    async def test_bcc_gets_a_copy_and_a_transaction_but_is_in_no_header(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        payload = mail()
        payload["headers"]["bcc"] = [{"email": "audit@example.com", "name": "Audit"}]  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        ids = await delivery_ids(sessionmaker)
        assert response.json() == {
            "transactions": [{"id": ids["alice@example.com"]}, {"id": ids["audit@example.com"]}]
        }
        await worker.run_until_idle()
        audit = copy_for(smtp_server, "audit@example.com")
        assert "Bcc" not in audit.message()
        assert b"audit@example.com" not in audit.data

    async def test_custom_headers_with_string_and_list_values_are_sent(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        payload = mail()
        payload["headers"]["custom_headers"] = {  # type: ignore[index]
            "X-Campaign": "spring",
            "X-Tags": ["new", "sale"],
        }

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        await worker.run_until_idle()
        sent = smtp_server.received[0].message()
        assert sent["X-Campaign"] == "spring"
        assert sent["X-Tags"] == "new, sale"

    async def test_a_template_id_by_number_and_common_fields_render_the_template(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await make_template(sessionmaker, account)
        payload = mail(options={"template_id": "1"})
        del payload["body"]
        payload["headers"]["subject"] = "Shipped, {{name}}"  # type: ignore[index]
        payload["body"] = {"personalisation_fields": {"common_fields": {"name": "Alice"}}}

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        await worker.run_until_idle()
        sent = smtp_server.received[0].message()
        assert sent["Subject"] == "Shipped, Alice"
        assert sent["From"] == f"Shop <{SENDER}>"

    async def test_an_inline_image_is_sent_with_its_content_id(
        self,
        client: httpx.AsyncClient,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
        payload = mail(
            body={"html": '<p><img src="cid:logo"></p>'},
            attachments={
                "data": [
                    {
                        "filename": "logo.png",
                        "data": base64.b64encode(png).decode(),
                        "content_id": "logo",
                    }
                ]
            },
        )

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        await worker.run_until_idle()
        sent = smtp_server.received[0].message()
        [image] = [part for part in sent.walk() if part.get_content_type() == "image/png"]
        assert image["Content-ID"] == "<logo>"
        assert image.get_content() == png

    async def test_an_empty_path_beside_data_is_not_a_path(
        self, client: httpx.AsyncClient, account: Account
    ) -> None:
        payload = mail(
            attachments={"data": [{"filename": "a.txt", "data": "aGk=", "path": ""}]},
        )

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text

    async def test_an_idempotency_key_replays_the_same_transactions(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        headers = {"Idempotency-Key": "order-1"}
        first = await client.post(URL, json=mail(), auth=account.auth, headers=headers)
        again = await client.post(URL, json=mail(), auth=account.auth, headers=headers)
        other = await client.post(
            URL, json=mail(options={"group_name": "x"}), auth=account.auth, headers=headers
        )

        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["Idempotency-Replayed"] == "true"
        assert other.status_code == 409
        assert other.json()["error"]["errors"][0]["reason"] == "Duplicate"
        assert (await stored_rows(sessionmaker))["message"] == 1

    async def test_unknown_fields_are_ignored(
        self, client: httpx.AsyncClient, account: Account
    ) -> None:
        response = await client.post(
            URL, json=mail(campaign={"id": 7}, options={"priority": "high"}), auth=account.auth
        )

        assert response.status_code == 200, response.text
