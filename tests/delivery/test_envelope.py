"""VERP envelope senders: each delivery's own, signed, return path."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.base import new_id
from posthouse.db.models import Delivery, Domain, Workspace
from posthouse.delivery.envelope import looks_like_verp, parse_verp, verp_address
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart
from tests.smtp_server import SmtpServer

SECRET = "test-secret"


class TestVerp:
    def test_an_address_names_its_delivery(self) -> None:
        delivery_id = new_id()

        address = verp_address(
            delivery_id, return_path_domain="bounces.shop.example", secret=SECRET
        )

        assert address.startswith("b-")
        assert address.endswith("@bounces.shop.example")
        assert parse_verp(address, secret=SECRET) == delivery_id

    def test_case_folding_by_a_relay_does_not_matter(self) -> None:
        delivery_id = new_id()
        address = verp_address(
            delivery_id, return_path_domain="bounces.shop.example", secret=SECRET
        )

        assert parse_verp(f"<{address.upper()}>", secret=SECRET) == delivery_id

    def test_a_tampered_mac_is_refused(self) -> None:
        address = verp_address(new_id(), return_path_domain="b.example", secret=SECRET)
        local, domain = address.split("@")
        tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"

        assert looks_like_verp(tampered)
        assert parse_verp(tampered, secret=SECRET) is None

    def test_another_delivery_id_with_a_valid_looking_mac_is_refused(self) -> None:
        first = verp_address(new_id(), return_path_domain="b.example", secret=SECRET)
        second = verp_address(new_id(), return_path_domain="b.example", secret=SECRET)
        # The id of the second with the mac of the first.
        spliced = second.split("-")[0] + "-" + second.split("-")[1] + "-" + first.split("-")[2]

        assert parse_verp(spliced, secret=SECRET) is None

    def test_another_secret_is_refused(self) -> None:
        address = verp_address(new_id(), return_path_domain="b.example", secret=SECRET)

        assert parse_verp(address, secret="another-secret") is None

    def test_ordinary_addresses_are_not_verp(self) -> None:
        assert not looks_like_verp("bounces@b.example")
        assert parse_verp("b-notaulid-0123456789@b.example", secret=SECRET) is None


class TestEnvelopeSender:
    async def test_a_domain_s_mail_leaves_with_its_delivery_s_verp_address(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        async with sessionmaker.begin() as session:
            workspace = await session.scalar(select(Workspace).where(Workspace.name == "acme"))
            assert workspace is not None
            session.add(
                Domain(
                    workspace_id=workspace.id,
                    name="yourstore.example",
                    return_path_domain="bounces.yourstore.example",
                )
            )
        payload = {"from": sender.email, "to": ["a@x.example", "b@x.example"], "subject": "s"}
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart({**payload, "body": "hi"})
        )
        assert response.status_code == 202

        await worker.run_until_idle()

        async with sessionmaker() as session:
            ids = {d.recipient: d.id for d in await session.scalars(select(Delivery))}
        secret = settings.secret_key.get_secret_value()
        senders = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.received}
        assert set(senders) == {"a@x.example", "b@x.example"}
        for recipient, mail_from in senders.items():
            assert mail_from.endswith("@bounces.yourstore.example")
            assert parse_verp(mail_from, secret=secret) == ids[recipient]

    async def test_without_a_domain_the_from_address_is_the_envelope_sender(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        payload = {"from": sender.email, "to": ["a@x.example"], "subject": "s", "body": "hi"}
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
        assert response.status_code == 202

        await worker.run_until_idle()

        assert [r.mail_from for r in smtp_server.received] == [sender.email]
