"""The worker signs each message as its From domain (sending_identities + mime.dkim)."""

import dkim
import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_sender, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import publish_json, txt_lookup
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"


def payload(sender: str) -> dict[str, object]:
    return {
        "from": sender,
        "to": ["alice@example.com", "bob@example.com"],
        "cc": ["carol@example.com"],
        "replyTo": [f"support@{DOMAIN}"],
        "subject": "Your order",
        "body": "<h1>Thanks</h1>",
    }


class TestWorkerSigning:
    async def test_every_delivery_carries_a_signature_that_verifies_through_dns(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})
        publish_json(dns_server, added.json())

        sent = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(payload(sender.email))
        )
        assert sent.status_code == 202
        await worker.run_until_idle()

        received = smtp_server.received
        assert len(received) == 3
        for mail in received:
            assert mail.data.startswith(b"DKIM-Signature: ")
            assert dkim.verify(mail.data, dnsfunc=txt_lookup(dns_server))
        tampered = b"Subject: Re: Your order\r\n" + received[0].data
        assert not dkim.verify(tampered, dnsfunc=txt_lookup(dns_server))

    async def test_a_domain_without_a_key_goes_unsigned(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        other = await make_sender(sessionmaker, "hello@elsewhere.example")

        sent = await client.post(
            "/api/v1/emails", headers=other.headers, **multipart(payload(other.email))
        )
        assert sent.status_code == 202
        await worker.run_until_idle()

        assert len(smtp_server.received) == 3
        assert all(b"DKIM-Signature" not in m.data for m in smtp_server.received)
