"""POST /api/v1/emails end to end: accepted, stored, delivered to a real SMTP server."""

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.models import Attachment
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_sender, multipart
from tests.helpers import NOTHING_STORED, deliveries, message_row, stored_rows
from tests.smtp_server import SmtpServer

REFERENCE_ID = re.compile(r"^ema_[0-9A-HJKMNP-TV-Z]{26}$")
NOT_FOUND = {"status": 404, "message": "Sender email is not found in platform!"}

SEED_PAYLOAD = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com", "bob@example.com"],
    "cc": ["manager@example.com"],
    "bcc": ["audit@example.com"],
    "replyTo": ["support@yourstore.example"],
    "subject": "Welcome to our store!",
    "body": "<h1>Thanks for joining</h1><p>We're glad you're here.</p>",
}


class TestSend:
    async def test_seed_example_is_accepted_and_delivered_to_every_recipient(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(SEED_PAYLOAD, [("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")]),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["referenceId"].startswith("ema_")
        assert body["to"] == SEED_PAYLOAD["to"]
        assert body["bcc"] == ["audit@example.com"]
        assert body["subject"] == "Welcome to our store!"

        await worker.run_until_idle()

        received = smtp_server.received
        assert sorted(r.rcpt_tos[0] for r in received) == [
            "alice@example.com",
            "audit@example.com",
            "bob@example.com",
            "manager@example.com",
        ]
        message = received[0].message()
        assert message["Subject"] == "Welcome to our store!"
        assert "Bcc" not in message
        assert "audit@example.com" not in received[0].data.decode()
        assert len({r.message()["Message-ID"] for r in received}) == 1
        assert [a.get_filename() for a in message.iter_attachments()] == ["invoice.pdf"]

    async def test_the_202_body_is_exactly_the_documented_one(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        payload = {**SEED_PAYLOAD, "bcc": []}
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(payload, [("invoice.pdf", b"%PDF-1.4", "application/pdf")]),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert REFERENCE_ID.match(body.pop("referenceId"))
        assert body == payload

    async def test_the_seed_curl_example_gets_empty_lists_and_no_attachments_echoed(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        payload = {
            "from": "no-reply@yourstore.example",
            "to": ["alice@example.com", "bob@example.com"],
            "subject": "Welcome to our store!",
            "body": "<h1>Thanks for joining</h1>",
        }
        files = [
            ("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"),
            ("terms.pdf", b"%PDF-1.4 terms", "application/pdf"),
        ]
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(payload, files)
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert list(body) == [
            "referenceId", "from", "to", "cc", "bcc", "replyTo", "subject", "body"
        ]  # fmt: skip
        assert {**body, "referenceId": None} == {
            **payload,
            "referenceId": None,
            "cc": [],
            "bcc": [],
            "replyTo": [],
        }

    async def test_one_transaction_stores_message_files_and_one_delivery_per_recipient(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        payload = {**SEED_PAYLOAD, "cc": ["manager@example.com", "ALICE@example.com"]}
        files = [
            ("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"),
            ("terms.txt", b"terms and conditions", "text/plain"),
        ]
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(payload, files)
        )

        assert response.status_code == 202, response.text
        assert await stored_rows(sessionmaker) == {"message": 1, "attachment": 2, "delivery": 4}
        rows = await deliveries(sessionmaker, response.json()["referenceId"])
        assert [(d.recipient, d.kind, d.status, d.attempts) for d in rows] == [
            ("alice@example.com", "to", "queued", 0),
            ("audit@example.com", "bcc", "queued", 0),
            ("bob@example.com", "to", "queued", 0),
            ("manager@example.com", "cc", "queued", 0),
        ]
        async with sessionmaker() as session:
            stored = await session.scalars(select(Attachment).order_by(Attachment.position))
            assert [(a.filename, a.content_type, a.data) for a in stored] == [
                ("invoice.pdf", "application/pdf", b"%PDF-1.4 invoice"),
                ("terms.txt", "text/plain", b"terms and conditions"),
            ]

    async def test_missing_tokens_are_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, worker: Worker, smtp_server: SmtpServer
    ) -> None:
        response = await client.post("/api/v1/emails", **multipart(SEED_PAYLOAD))

        assert response.status_code == 401
        assert response.json()["status"] == 401
        assert await worker.run_until_idle() == 0


class TestSenderBinding:
    async def test_unknown_tokens_get_the_documented_404(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers={"X-Api-Access-Token": "pha_unknown", "X-Api-Secret-Token": "phs_unknown"},
            **multipart(SEED_PAYLOAD),
        )

        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_a_wrong_secret_for_a_real_access_token_gets_the_same_404(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        headers = {**sender.headers, "X-Api-Secret-Token": sender.secret_token + "x"}

        response = await client.post("/api/v1/emails", headers=headers, **multipart(SEED_PAYLOAD))

        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_tokens_of_one_sender_cannot_send_as_another(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        other = await make_sender(sessionmaker, "billing@yourstore.example")

        response = await client.post(
            "/api/v1/emails", headers=other.headers, **multipart(SEED_PAYLOAD)
        )

        assert (response.status_code, response.json()) == (404, NOT_FOUND)
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_tokens_of_another_workspace_cannot_send_as_its_sender(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        other = await make_sender(sessionmaker, "no-reply@elsewhere.example", workspace="other")

        response = await client.post(
            "/api/v1/emails", headers=other.headers, **multipart(SEED_PAYLOAD)
        )

        assert (response.status_code, response.json()) == (404, NOT_FOUND)

    async def test_a_domain_wide_sender_may_send_from_any_address_of_its_domain(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker
    ) -> None:
        domain = await make_sender(sessionmaker, "@yourstore.example")

        response = await client.post(
            "/api/v1/emails",
            headers=domain.headers,
            **multipart({**SEED_PAYLOAD, "from": "orders@yourstore.example"}),
        )
        elsewhere = await client.post(
            "/api/v1/emails",
            headers=domain.headers,
            **multipart({**SEED_PAYLOAD, "from": "orders@evil.example"}),
        )

        assert response.status_code == 202, response.text
        assert (elsewhere.status_code, elsewhere.json()) == (404, NOT_FOUND)


class TestAddresses:
    async def test_display_names_are_accepted_echoed_and_encoded(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        payload = {
            "from": "Your Store <no-reply@yourstore.example>",
            "to": ['"Smith, Alice" <alice@example.com>', "Émile Zoë <emile@example.com>"],
            "replyTo": ["Support Team <support@yourstore.example>"],
            "subject": "Grüße, 你好 👋",
            "body": "<p>Hello</p>",
        }
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["from"] == "Your Store <no-reply@yourstore.example>"
        assert body["to"] == [
            '"Smith, Alice" <alice@example.com>',
            '"Émile Zoë" <emile@example.com>',
        ]
        await worker.run_until_idle()
        received = sorted(smtp_server.received, key=lambda r: r.rcpt_tos[0])
        assert [r.rcpt_tos for r in received] == [["alice@example.com"], ["emile@example.com"]]
        assert [r.mail_from for r in received] == ["no-reply@yourstore.example"] * 2
        message = received[0].message()
        assert message["From"].addresses[0].display_name == "Your Store"
        assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
            ("Smith, Alice", "alice@example.com"),
            ("Émile Zoë", "emile@example.com"),
        ]
        assert message["Reply-To"].addresses[0].display_name == "Support Team"
        assert message["Subject"] == "Grüße, 你好 👋"
        assert received[0].data.isascii()

    async def test_international_domains_are_sent_in_idna_form(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        shop = await make_sender(sessionmaker, "info@bücher.example")
        payload = {
            "from": "Bücherstube <info@bücher.example>",
            "to": ["kunde@müller.example"],
            "subject": "Ihre Bestellung",
            "body": "<p>Danke</p>",
        }

        response = await client.post("/api/v1/emails", headers=shop.headers, **multipart(payload))

        assert response.status_code == 202, response.text
        assert shop.email == "info@xn--bcher-kva.example"
        await worker.run_until_idle()
        [received] = smtp_server.received
        assert received.mail_from == "info@xn--bcher-kva.example"
        assert received.rcpt_tos == ["kunde@xn--mller-kva.example"]
        message = received.message()
        assert message["To"].addresses[0].addr_spec == "kunde@xn--mller-kva.example"
        assert message["From"].addresses[0].display_name == "Bücherstube"
        assert message["Message-ID"].endswith("@xn--bcher-kva.example>")

    async def test_the_message_id_is_the_stored_one_for_every_recipient(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(SEED_PAYLOAD)
        )
        stored = await message_row(sessionmaker, response.json()["referenceId"])

        await worker.run_until_idle()

        assert len(smtp_server.received) == 4
        assert {r.message()["Message-ID"] for r in smtp_server.received} == {
            stored.message_id_header
        }


class TestSenderAddressCase:
    async def test_from_matches_the_sender_whatever_the_case_of_its_local_part(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        payload = {**SEED_PAYLOAD, "from": "No-Reply@YourStore.example", "cc": [], "bcc": []}

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))

        assert response.status_code == 202, response.text
        await worker.run_until_idle()
        assert {r.mail_from for r in smtp_server.received} == {"No-Reply@yourstore.example"}
