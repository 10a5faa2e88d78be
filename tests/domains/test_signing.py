"""The worker signs each message as its From domain (sending_identities + mime.dkim)."""

import dataclasses
import uuid

import dkim
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Message
from posthouse.delivery import content as delivery_content
from posthouse.delivery.transports.factory import create_transport
from posthouse.delivery.worker import Worker
from posthouse.mime.builder import MimeContent, build_message
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


class HeaderPerRecipient:
    """A per-recipient hook that gives every recipient but ``common`` its own header."""

    def __init__(self, common: str | None = None) -> None:
        self.common = common

    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None:
        if recipient == self.common:
            return None
        return dataclasses.replace(content, headers={**content.headers, "X-Recipient": recipient})


class TestRecipientHook:
    async def test_each_copy_the_hook_changes_arrives_with_its_own_header_and_signature(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})
        publish_json(dns_server, added.json())
        builds = _count_builds(monkeypatch)
        transport = create_transport(settings)
        worker = Worker(
            sessionmaker=sessionmaker,
            transport=transport,
            settings=settings,
            recipient_hook=HeaderPerRecipient(common="carol@example.com"),
        )

        sent = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(payload(sender.email))
        )
        assert sent.status_code == 202
        await worker.run_until_idle()
        await transport.close()

        received = {mail.rcpt_tos[0]: mail for mail in smtp_server.received}
        assert sorted(received) == ["alice@example.com", "bob@example.com", "carol@example.com"]
        for recipient, mail in received.items():
            assert mail.data.startswith(b"DKIM-Signature: ")
            assert dkim.verify(mail.data, dnsfunc=txt_lookup(dns_server))
            header = mail.message()["X-Recipient"]
            assert header == (None if recipient == "carol@example.com" else recipient)
        # Alice's and Bob's copies, and the common one Carol gets.
        assert builds == [1, 1, 1]

    async def test_without_a_hook_identical_copies_are_built_once(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        builds = _count_builds(monkeypatch)

        sent = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(payload(sender.email))
        )
        assert sent.status_code == 202
        await worker.run_until_idle()

        assert len(smtp_server.received) == 3
        assert len({mail.data for mail in smtp_server.received}) == 1
        assert builds == [1]


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per message the worker builds."""
    builds: list[int] = []

    def counting(content: MimeContent) -> bytes:
        builds.append(1)
        return build_message(content)

    monkeypatch.setattr(delivery_content, "build_message", counting)
    return builds
