"""Issue 15, domains: no transaction open during DNS lookups, valid names only, and DNS
settling which workspace may send from a domain."""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Domain
from tests.conftest import make_sender, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import publish_json
from tests.helpers import NOTHING_STORED, stored_rows

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def domains(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Domain)) or 0)


class TestVerificationHoldsNoTransaction:
    """4: a resolver that never answers stops nobody else."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"dns_timeout_seconds": 3.0})

    async def test_other_requests_write_while_verification_waits_for_dns(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        dns_server: DnsServer,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})
        assert added.status_code == 201
        for record in added.json()["records"]:
            dns_server.ignore(record["name"])
        sender = await make_sender(sessionmaker, "no-reply@elsewhere.example")

        verifying = asyncio.create_task(
            client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=admin)
        )
        await until(lambda: bool(dns_server.queries))  # waiting for DNS now

        assert app.state.engine.pool.checkedout() == 0
        sent = await asyncio.wait_for(
            client.post(
                "/api/v1/emails",
                headers=sender.headers,
                **multipart(
                    {
                        "from": sender.email,
                        "to": ["alice@example.com"],
                        "subject": "Hi",
                        "body": "<p>Hi</p>",
                    }
                ),
            ),
            20,
        )
        assert sent.status_code == 202, sent.text
        suppressed = await client.post(
            "/api/v1/suppressions", headers=admin, json={"address": "bob@example.com"}
        )
        assert suppressed.status_code == 201
        assert not verifying.done()

        verified = await asyncio.wait_for(verifying, 20)
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is False
        assert {r["detail"] for r in verified.json()["records"]} != {None}


class TestDomainNames:
    """15: names that are not sending domains are refused."""

    @pytest.mark.parametrize(
        "name",
        ["127.0.0.1", "10.0.0.1", "example.123", "xn--zz.com", "mail.xn--a.example", "a" * 400],
    )
    async def test_is_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, name: str
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        response = await client.post("/api/v1/domains", headers=admin, json={"name": name})

        assert response.status_code == 400, response.text
        assert set(response.json()) == {"status", "message"}
        assert len(response.text) < 400
        assert await domains(sessionmaker) == 0

    async def test_a_valid_international_name_is_kept(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        response = await client.post(
            "/api/v1/domains", headers=admin, json={"name": "bücher.example"}
        )

        assert response.status_code == 201, response.text
        assert response.json()["name"] == "xn--bcher-kva.example"


class TestWhoHoldsADomain:
    """15: any workspace may add a domain; only the one whose own DKIM key its owner
    published verifies it and may send from it (docs/dns-setup.md)."""

    async def test_a_second_workspace_cannot_verify_with_the_first_ones_records(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, dns_server: DnsServer
    ) -> None:
        owner = await make_workspace_key(sessionmaker, "owner")
        squatter = await make_workspace_key(sessionmaker, "squatter")
        added = await client.post("/api/v1/domains", headers=owner, json={"name": DOMAIN})
        publish_json(dns_server, added.json())
        assert (await client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=owner)).json()[
            "verified"
        ]

        also = await client.post("/api/v1/domains", headers=squatter, json={"name": DOMAIN})
        attempt = await client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=squatter)

        assert also.status_code == 201
        assert attempt.json()["verified"] is False
        dkim = [r for r in attempt.json()["records"] if r["purpose"] == "dkim"]
        assert [r["verified"] for r in dkim] == [False]
        sender = await make_sender(sessionmaker, f"no-reply@{DOMAIN}", workspace="squatter")
        settings: Settings = client._transport.app.state.settings  # type: ignore[attr-defined]
        settings.require_verified_domains = True
        try:
            refused = await client.post(
                "/api/v1/emails",
                headers=sender.headers,
                **multipart(
                    {"from": sender.email, "to": ["a@example.com"], "subject": "S", "body": "B"}
                ),
            )
        finally:
            settings.require_verified_domains = False
        assert refused.status_code == 409
        assert await stored_rows(sessionmaker) == NOTHING_STORED
