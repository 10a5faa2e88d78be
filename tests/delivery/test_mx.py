"""Direct MX delivery against a stub DNS server and real SMTP servers on loopback.

Every MX host listens on the same port (one POSTHOUSE_MX_PORT) at its own loopback
address: 127.0.0.2, 127.0.0.3, ... Nothing listens on 127.0.0.9 (a dead host).
"""

import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import Delivery, Event
from posthouse.delivery.transports.base import Outcome, OutgoingMail
from posthouse.delivery.transports.factory import create_transport, mx_config
from posthouse.delivery.transports.mx import MxConfig, MxTransport
from posthouse.delivery.worker import Worker
from posthouse.domains.dns import create_resolver
from tests.conftest import SenderTokens, multipart
from tests.dns_server import DnsServer
from tests.smtp_server import SmtpServer, free_port

MESSAGE = b"From: a@sender.example\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def mx_port() -> int:
    return free_port()


@pytest.fixture
def mx_hosts(mx_port: int) -> Iterator[dict[str, SmtpServer]]:
    """Two MX hosts, ``mx1`` on 127.0.0.2 and ``mx2`` on 127.0.0.3."""
    servers = {
        "mx1": SmtpServer(hostname="127.0.0.2", port=mx_port).start(),
        "mx2": SmtpServer(hostname="127.0.0.3", port=mx_port).start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def records(dns_server: DnsServer) -> DnsServer:
    dns_server.add("mx1.example.net", "A", "127.0.0.2")
    dns_server.add("mx2.example.net", "A", "127.0.0.3")
    dns_server.add("dead.example.net", "A", "127.0.0.9")
    dns_server.add("example.com", "MX", "20 mx2.example.net.", "10 mx1.example.net.")
    return dns_server


def transport_for(dns_server: DnsServer, mx_port: int, **overrides: object) -> MxTransport:
    settings = Settings(
        _env_file=None,
        dns_resolvers=[dns_server.address],
        dns_timeout_seconds=0.3,
        mx_port=mx_port,
        smtp_timeout_seconds=5.0,
        mx_rate_per_destination=0,
    )
    config = mx_config(settings)
    return MxTransport(
        MxConfig(**{**config.__dict__, **overrides}),  # type: ignore[arg-type]
        create_resolver(settings),
    )


def mail(recipient: str = "bob@example.com") -> OutgoingMail:
    return OutgoingMail("bounce@sender.example", recipient, MESSAGE)


def self_signed_context(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx1.example.net")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


class TestMxTransport:
    async def test_the_most_preferred_mx_host_receives_the_mail(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        transport = transport_for(records, mx_port)

        result = await transport.send(mail())
        await transport.close()

        assert result.outcome == Outcome.SENT
        assert result.remote_host == "mx1.example.net"
        assert [r.rcpt_tos for r in mx_hosts["mx1"].received] == [["bob@example.com"]]
        assert mx_hosts["mx1"].received[0].mail_from == "bounce@sender.example"
        assert mx_hosts["mx2"].received == []

    async def test_a_domain_without_mx_is_its_own_host(
        self, dns_server: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        dns_server.add("plain.example", "A", "127.0.0.3")
        transport = transport_for(dns_server, mx_port)

        result = await transport.send(mail("carol@plain.example"))
        await transport.close()

        assert result.outcome == Outcome.SENT
        assert [r.rcpt_tos for r in mx_hosts["mx2"].received] == [["carol@plain.example"]]

    async def test_a_dead_primary_passes_the_mail_to_the_next_host(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        records.remove("example.com", "MX")
        records.add("example.com", "MX", "10 dead.example.net.", "20 mx2.example.net.")
        transport = transport_for(records, mx_port)

        result = await transport.send(mail())
        await transport.close()

        assert result.outcome == Outcome.SENT
        assert result.remote_host == "mx2.example.net"
        assert len(mx_hosts["mx2"].received) == 1

    async def test_every_host_dead_defers(self, records: DnsServer, mx_port: int) -> None:
        records.remove("example.com", "MX")
        records.add("example.com", "MX", "10 dead.example.net.")
        transport = transport_for(records, mx_port)

        result = await transport.send(mail())

        assert result.outcome == Outcome.DEFERRED
        assert result.remote_host == "dead.example.net"

    async def test_a_null_mx_bounces_without_connecting(
        self, dns_server: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        dns_server.add("nomail.example", "MX", "0 .")
        transport = transport_for(dns_server, mx_port)

        result = await transport.send(mail("x@nomail.example"))

        assert result.outcome == Outcome.BOUNCED
        assert result.code == 556
        assert "null MX" in result.reply
        assert mx_hosts["mx1"].received == mx_hosts["mx2"].received == []

    async def test_a_domain_that_does_not_exist_bounces(
        self, dns_server: DnsServer, mx_port: int
    ) -> None:
        transport = transport_for(dns_server, mx_port)

        result = await transport.send(mail("x@no-such-domain.example"))

        assert result.outcome == Outcome.BOUNCED
        assert result.reply.startswith("5.1.2")

    async def test_servfail_defers(self, dns_server: DnsServer, mx_port: int) -> None:
        dns_server.fail("broken.example")
        transport = transport_for(dns_server, mx_port)

        result = await transport.send(mail("x@broken.example"))

        assert result.outcome == Outcome.DEFERRED
        assert "SERVFAIL" in result.reply

    async def test_a_dns_timeout_defers(self, dns_server: DnsServer, mx_port: int) -> None:
        dns_server.ignore("slow.example")
        transport = transport_for(dns_server, mx_port)

        result = await transport.send(mail("x@slow.example"))

        assert result.outcome == Outcome.DEFERRED

    async def test_a_5xx_recipient_reply_bounces(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        mx_hosts["mx1"].handler.rcpt_replies.append("550 5.1.1 No such user")
        transport = transport_for(records, mx_port)

        result = await transport.send(mail())
        await transport.close()

        assert (result.outcome, result.code) == (Outcome.BOUNCED, 550)
        assert mx_hosts["mx2"].received == []

    async def test_one_connection_carries_several_deliveries_to_a_domain(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        transport = transport_for(records, mx_port)

        for name in ("a", "b", "c"):
            assert (await transport.send(mail(f"{name}@example.com"))).outcome == Outcome.SENT
        await transport.close()

        received = mx_hosts["mx1"].received
        assert len(received) == 3
        assert len({r.peer for r in received}) == 1

    async def test_sends_beyond_a_second_s_burst_wait_for_the_rate(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        transport = transport_for(records, mx_port, rate_per_destination=10.0)

        started = time.monotonic()
        for n in range(15):
            assert (await transport.send(mail(f"r{n}@example.com"))).outcome == Outcome.SENT
        elapsed = time.monotonic() - started
        await transport.close()

        # Ten go at once (the burst); the other five wait a tenth of a second each.
        assert elapsed >= 0.45
        assert len(mx_hosts["mx1"].received) == 15

    async def test_421_pauses_the_destination(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        mx_hosts["mx1"].handler.rcpt_replies.append("421 4.7.0 Too many messages, slow down")
        transport = transport_for(records, mx_port, slowdown_seconds=30.0)

        throttled = await transport.send(mail("a@example.com"))
        held_back = await transport.send(mail("b@example.com"))
        elsewhere = await transport.send(mail("c@plain.example"))
        await transport.close()

        assert (throttled.outcome, throttled.code) == (Outcome.DEFERRED, 421)
        assert throttled.retry_after == 30.0
        assert held_back.outcome == Outcome.DEFERRED
        assert "slow down" in held_back.reply
        assert held_back.retry_after is not None
        assert 25 < held_back.retry_after <= 30
        # Neither was accepted anywhere, and the second never reached a server.
        assert mx_hosts["mx1"].received == mx_hosts["mx2"].received == []
        # Another destination is not held back (plain.example has no records: bounced).
        assert elsewhere.outcome == Outcome.BOUNCED

    async def test_a_4_7_x_reply_pauses_the_destination(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        mx_hosts["mx1"].handler.data_replies.append("450 4.7.28 Rate limited")
        transport = transport_for(records, mx_port, slowdown_seconds=30.0)

        first = await transport.send(mail("a@example.com"))
        second = await transport.send(mail("b@example.com"))

        assert first.outcome == second.outcome == Outcome.DEFERRED
        assert second.retry_after is not None
        assert mx_hosts["mx1"].received == []

    async def test_starttls_is_used_when_offered(
        self, records: DnsServer, mx_port: int, tmp_path: Path
    ) -> None:
        server = SmtpServer(
            hostname="127.0.0.2", port=mx_port, tls_context=self_signed_context(tmp_path)
        ).start()
        try:
            transport = transport_for(records, mx_port, tls_policy="require")
            result = await transport.send(mail())
            await transport.close()
        finally:
            server.stop()

        assert result.outcome == Outcome.SENT
        assert [r.tls for r in server.received] == [True]

    async def test_required_tls_never_falls_back_to_clear_text(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        transport = transport_for(records, mx_port, tls_policy="require")

        result = await transport.send(mail())

        assert result.outcome == Outcome.DEFERRED
        assert "STARTTLS" in result.reply
        assert mx_hosts["mx1"].received == mx_hosts["mx2"].received == []

    async def test_required_verified_tls_refuses_a_self_signed_certificate(
        self, records: DnsServer, mx_port: int, tmp_path: Path
    ) -> None:
        server = SmtpServer(
            hostname="127.0.0.2", port=mx_port, tls_context=self_signed_context(tmp_path)
        ).start()
        try:
            transport = transport_for(records, mx_port, tls_policy="require_verified")
            result = await transport.send(mail())
        finally:
            server.stop()

        assert result.outcome == Outcome.DEFERRED
        assert "STARTTLS" in result.reply
        assert server.received == []

    async def test_opportunistic_tls_delivers_to_a_host_without_starttls(
        self, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
    ) -> None:
        transport = transport_for(records, mx_port, tls_policy="opportunistic")

        result = await transport.send(mail())
        await transport.close()

        assert result.outcome == Outcome.SENT
        assert [r.tls for r in mx_hosts["mx1"].received] == [False]


@pytest.fixture
def mx_settings(
    settings: Settings, records: DnsServer, mx_port: int, mx_hosts: dict[str, SmtpServer]
) -> Settings:
    return settings.model_copy(
        update={
            "delivery_url": "mx:",
            "dns_resolvers": [records.address],
            "dns_timeout_seconds": 0.3,
            "mx_port": mx_port,
            "mx_slowdown_seconds": 30.0,
        }
    )


@pytest.fixture
async def mx_worker(
    sessionmaker: async_sessionmaker[AsyncSession], mx_settings: Settings
) -> AsyncIterator[Worker]:
    transport = create_transport(mx_settings)
    yield Worker(sessionmaker=sessionmaker, transport=transport, settings=mx_settings)
    await transport.close()


async def deliveries(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Delivery]:
    async with sessionmaker() as session:
        return {d.recipient: d for d in await session.scalars(select(Delivery))}


async def events(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.scalars(select(Event).order_by(Event.type))
        return [(e.type, e.data.get("recipient", "")) for e in rows]


class TestMxWorker:
    async def test_an_api_send_reaches_each_recipient_domain_s_mx(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        mx_worker: Worker,
        mx_hosts: dict[str, SmtpServer],
        records: DnsServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        records.add("other.example", "MX", "5 mx2.example.net.")
        records.add("nomail.example", "MX", "0 .")
        payload = {
            "from": sender.email,
            "to": ["bob@example.com", "eve@other.example", "x@nomail.example"],
            "subject": "Hello",
            "body": "<p>hi</p>",
        }
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
        assert response.status_code == 202, response.text

        await mx_worker.run_until_idle()

        assert [r.rcpt_tos for r in mx_hosts["mx1"].received] == [["bob@example.com"]]
        assert [r.rcpt_tos for r in mx_hosts["mx2"].received] == [["eve@other.example"]]
        status = {r: d.status for r, d in (await deliveries(sessionmaker)).items()}
        assert status == {
            "bob@example.com": "sent",
            "eve@other.example": "sent",
            "x@nomail.example": "bounced",
        }
        assert ("Bounce", "x@nomail.example") in await events(sessionmaker)

    async def test_a_throttled_delivery_waits_as_long_as_the_destination_asked(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        mx_worker: Worker,
        mx_hosts: dict[str, SmtpServer],
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        mx_hosts["mx1"].handler.rcpt_replies.append("421 4.7.0 Slow down")
        payload = {"from": sender.email, "to": ["bob@example.com"], "subject": "Hi", "body": "x"}
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
        assert response.status_code == 202

        await mx_worker.run_until_idle()

        delivery = (await deliveries(sessionmaker))["bob@example.com"]
        assert delivery.status == "deferred"
        assert delivery.last_smtp_code == 421
        assert delivery.next_attempt_at >= utcnow() + dt.timedelta(seconds=25)
        assert mx_hosts["mx1"].received == []
