"""POST /api/v1/emails end to end: accepted, stored, delivered to a real SMTP server."""

import httpx

from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart
from tests.smtp_server import SmtpServer

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

    async def test_missing_tokens_are_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, worker: Worker, smtp_server: SmtpServer
    ) -> None:
        response = await client.post("/api/v1/emails", **multipart(SEED_PAYLOAD))

        assert response.status_code == 401
        assert response.json()["status"] == 401
        assert await worker.run_until_idle() == 0
