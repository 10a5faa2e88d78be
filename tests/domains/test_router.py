"""The admin API for domains, and submit() refusing mail from unverified domains."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Domain
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import add_verified, publish_json
from tests.helpers import NOTHING_STORED, stored_rows

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"
SEND = {
    "from": f"no-reply@{DOMAIN}",
    "to": ["alice@example.com"],
    "subject": "Welcome",
    "body": "<p>Hello</p>",
}


class TestDomainApi:
    async def test_add_publish_verify_and_list(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, dns_server: DnsServer
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        added = await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})

        assert added.status_code == 201, added.text
        body = added.json()
        assert body["verified"] is False
        assert sorted(r["purpose"] for r in body["records"]) == [
            "dkim",
            "dmarc",
            "return_path",
            "spf",
            "spf_helo",
        ]
        assert all(
            set(r) >= {"purpose", "type", "name", "value", "verified"} for r in body["records"]
        )
        publish_json(dns_server, body)
        verified = await client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=admin)
        assert verified.status_code == 200
        assert verified.json()["verified"] is True
        assert all(r["verified"] for r in verified.json()["records"])
        listed = await client.get("/api/v1/domains", headers=admin)
        assert [d["name"] for d in listed.json()] == [DOMAIN]

    async def test_another_workspaces_domain_is_a_404_like_a_missing_one(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        owner = await make_workspace_key(sessionmaker, "acme")
        stranger = await make_workspace_key(sessionmaker, "stranger")
        await client.post("/api/v1/domains", headers=owner, json={"name": DOMAIN})

        theirs = await client.get(f"/api/v1/domains/{DOMAIN}", headers=stranger)
        missing = await client.get("/api/v1/domains/nothing.example", headers=stranger)
        verify = await client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=stranger)
        rotate = await client.post(f"/api/v1/domains/{DOMAIN}/dkim/rotate", headers=stranger)

        assert theirs.status_code == missing.status_code == verify.status_code == 404
        assert rotate.status_code == 404
        assert theirs.json()["message"] == f"domain {DOMAIN} not found"
        assert (await client.get("/api/v1/domains", headers=stranger)).json() == []

    async def test_rotation_then_activation_once_published(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, dns_server: DnsServer
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})

        rotated = (await client.post(f"/api/v1/domains/{DOMAIN}/dkim/rotate", headers=admin)).json()
        new = next(k["selector"] for k in rotated["dkimSelectors"] if not k["active"])
        early = await client.post(f"/api/v1/domains/{DOMAIN}/dkim/{new}/activate", headers=admin)
        publish_json(dns_server, rotated)
        activated = await client.post(
            f"/api/v1/domains/{DOMAIN}/dkim/{new}/activate", headers=admin
        )

        assert early.status_code == 409
        assert early.json()["status"] == 409
        assert activated.status_code == 200, activated.text
        assert [k["selector"] for k in activated.json()["dkimSelectors"] if k["active"]] == [new]
        unknown = await client.post(f"/api/v1/domains/{DOMAIN}/dkim/nope/activate", headers=admin)
        assert unknown.status_code == 404

    @pytest.mark.parametrize(
        ("payload", "status"),
        [({"name": "not a domain"}, 400), ({"name": 42}, 400), ({}, 400)],
    )
    async def test_bad_input_is_a_400_in_the_native_shape(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        payload: dict[str, object],
        status: int,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        response = await client.post("/api/v1/domains", headers=admin, json=payload)

        assert response.status_code == status
        assert response.json()["status"] == status

    async def test_keys_without_admin_scope_or_no_key_are_refused(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        sender_only = await make_workspace_key(sessionmaker, scopes="send")

        assert (await client.get("/api/v1/domains")).status_code == 401
        assert (await client.get("/api/v1/domains", headers=sender_only)).status_code == 403


class TestUnverifiedDomainRefused:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"require_verified_domains": True})

    async def test_sending_before_verification_is_a_409_and_nothing_is_stored(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        worker: Worker,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert response.status_code == 409
        assert response.json() == {
            "status": 409,
            "message": f"Unverified Domain - {DOMAIN}",
        }
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0

    async def test_a_domain_never_added_is_refused_too(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert response.status_code == 409

    async def test_once_verified_the_same_send_is_accepted_at_once(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        dns_server: DnsServer,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post("/api/v1/domains", headers=admin, json={"name": DOMAIN})
        refused = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))
        publish_json(dns_server, added.json())
        await client.post(f"/api/v1/domains/{DOMAIN}/verify", headers=admin)

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert refused.status_code == 409
        assert response.status_code == 202, response.text

    async def test_a_domain_unverified_elsewhere_is_refused_once_the_api_cache_expires(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        dns_server: DnsServer,
        settings: Settings,
    ) -> None:
        await add_verified(client, dns_server, await make_workspace_key(sessionmaker), DOMAIN)
        accepted = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))
        # As the worker's DNS re-check does when the records disappear.
        async with sessionmaker.begin() as session:
            await session.execute(update(Domain).values(verified_at=None))

        await asyncio.sleep(settings.auth_cache_seconds + 0.01)
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert accepted.status_code == 202, accepted.text
        assert response.status_code == 409

    async def test_another_workspaces_verified_domain_does_not_count(
        self,
        client: httpx.AsyncClient,
        sessionmaker: Sessionmaker,
        sender: SenderTokens,
        dns_server: DnsServer,
    ) -> None:
        other = await make_workspace_key(sessionmaker, "other")
        await add_verified(client, dns_server, other, DOMAIN)

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert response.status_code == 409


class TestVerificationOff:
    async def test_the_operator_can_turn_the_check_off(
        self, client: httpx.AsyncClient, sender: SenderTokens, app: FastAPI
    ) -> None:
        assert app.state.settings.require_verified_domains is False

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(SEND))

        assert response.status_code == 202
