"""Domains: records to publish, verification per record, re-checks, rotation, signing."""

import asyncio

import dkim
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import get_or_create_workspace
from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from posthouse.domains import service as domains_service
from posthouse.domains.recheck import DomainRechecker
from posthouse.domains.service import DomainDetail
from posthouse.errors import DomainExists, DomainNotFound, DomainNotVerified, ValidationFailed
from tests.conftest import SenderTokens, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import MAIL_HOST, publish, txt_lookup
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"


async def add(
    sessionmaker: Sessionmaker, name: str = DOMAIN, workspace: str = "acme"
) -> DomainDetail:
    async with sessionmaker.begin() as session:
        owner = await get_or_create_workspace(session, name=workspace)
        return await domains_service.add_domain(
            session, workspace_id=owner.id, name=name, mail_host=MAIL_HOST
        )


async def verify(
    sessionmaker: Sessionmaker, settings: Settings, detail: DomainDetail
) -> DomainDetail:
    # A session, not sessionmaker.begin(): verification ends its read before DNS.
    async with sessionmaker() as session:
        verified = await domains_service.verify_domain(
            session,
            workspace_id=detail.domain.workspace_id,
            name=detail.domain.name,
            resolver=domains_service.verification_resolver(settings),
        )
        await session.commit()
        return verified


def states(detail: DomainDetail) -> dict[str, bool]:
    return {r.purpose: r.verified for r in detail.records}


class TestAddDomain:
    async def test_creates_an_active_key_and_the_five_records(
        self, sessionmaker: Sessionmaker
    ) -> None:
        detail = await add(sessionmaker, "YourStore.Example.")

        assert detail.domain.name == DOMAIN
        assert detail.domain.return_path_domain == f"bounces.{DOMAIN}"
        assert detail.domain.verified_at is None
        [key] = detail.keys
        assert key.active
        assert key.selector.startswith("ph")
        records = {r.purpose: (r.type, r.name, r.value) for r in detail.records}
        assert records["dkim"] == (
            "TXT",
            f"{key.selector}._domainkey.{DOMAIN}",
            f"v=DKIM1; k=rsa; p={key.public_key_b64}",
        )
        assert records["spf"] == ("TXT", f"bounces.{DOMAIN}", f"v=spf1 a:{MAIL_HOST} ~all")
        assert records["dmarc"] == ("TXT", f"_dmarc.{DOMAIN}", "v=DMARC1; p=none")
        assert records["return_path"] == ("MX", f"bounces.{DOMAIN}", f"10 {MAIL_HOST}")
        assert records["spf_helo"] == ("TXT", MAIL_HOST, "v=spf1 a -all")

    async def test_the_helo_spf_record_is_recommended_not_required(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail, skip=("spf_helo",))

        verified = await verify(sessionmaker, settings, detail)

        assert "spf_helo" not in {r.purpose for r in verified.required_records}
        assert states(verified)["spf_helo"] is False
        assert verified.domain.verified_at is not None

    async def test_the_same_domain_twice_in_a_workspace_is_refused(
        self, sessionmaker: Sessionmaker
    ) -> None:
        await add(sessionmaker)

        with pytest.raises(DomainExists):
            await add(sessionmaker)

    @pytest.mark.parametrize("name", ["localhost", "exa mple.com", "a\r\nb.com", "-x.com", ""])
    async def test_an_invalid_name_is_refused(self, sessionmaker: Sessionmaker, name: str) -> None:
        with pytest.raises(ValidationFailed):
            await add(sessionmaker, name)


class TestVerifyDomain:
    async def test_all_records_published_verifies_the_domain(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail)

        verified = await verify(sessionmaker, settings, detail)

        assert states(verified) == {
            "dkim": True,
            "spf": True,
            "dmarc": True,
            "return_path": True,
            "spf_helo": True,
        }
        assert verified.domain.verified_at is not None

    async def test_each_record_keeps_its_own_state_and_a_reason(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail, skip=("dmarc", "spf"))
        dns_server.add(f"bounces.{DOMAIN}", "TXT", '"v=spf1 include:other.example ~all"')

        verified = await verify(sessionmaker, settings, detail)

        assert states(verified) == {
            "dkim": True,
            "spf": False,
            "dmarc": False,
            "return_path": True,
            "spf_helo": True,
        }
        assert verified.domain.verified_at is None
        reasons = {r.purpose: r.detail for r in verified.records}
        assert reasons["spf"] == f"the SPF record does not include a:{MAIL_HOST}"
        assert reasons["dmarc"] == f"no TXT record at _dmarc.{DOMAIN}"

    async def test_a_dkim_record_with_another_key_does_not_verify(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        other = await add(sessionmaker, "other.example")
        publish(dns_server, detail, skip=("dkim",))
        dkim_name = next(r.name for r in detail.records if r.purpose == "dkim")
        other_value = next(r.value for r in other.records if r.purpose == "dkim")
        dns_server.add(dkim_name, "TXT", f'"{other_value[:255]}" "{other_value[255:]}"')

        verified = await verify(sessionmaker, settings, detail)

        assert states(verified)["dkim"] is False
        assert "not this key" in next(r.detail for r in verified.records if r.purpose == "dkim")

    async def test_a_dns_failure_keeps_the_previous_state(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail)
        await verify(sessionmaker, settings, detail)
        dns_server.fail(f"_dmarc.{DOMAIN}")

        again = await verify(sessionmaker, settings, detail)

        assert again.domain.verified_at is not None
        assert states(again)["dmarc"] is True
        assert "failed" in next(r.detail for r in again.records if r.purpose == "dmarc")

    async def test_another_workspace_cannot_see_the_domain(
        self, sessionmaker: Sessionmaker, settings: Settings
    ) -> None:
        await add(sessionmaker)
        async with sessionmaker.begin() as session:
            stranger = await get_or_create_workspace(session, name="stranger")

            with pytest.raises(DomainNotFound) as theirs:
                await domains_service.get_domain(session, workspace_id=stranger.id, name=DOMAIN)
            with pytest.raises(DomainNotFound) as missing:
                await domains_service.get_domain(
                    session, workspace_id=stranger.id, name="nothing.example"
                )

        assert theirs.value.detail.replace(DOMAIN, "X") == missing.value.detail.replace(
            "nothing.example", "X"
        )


class TestRecheck:
    async def test_a_record_that_disappears_unverifies_the_domain(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail)
        await verify(sessionmaker, settings, detail)
        dns_server.remove(f"bounces.{DOMAIN}", "MX")
        rechecker = DomainRechecker(
            sessionmaker=sessionmaker,
            resolver=domains_service.verification_resolver(settings),
            interval_seconds=0.001,
        )

        assert await rechecker.run_once() == 1

        async with sessionmaker() as session:
            after = await domains_service.get_domain(
                session, workspace_id=detail.domain.workspace_id, name=DOMAIN
            )
        assert after.domain.verified_at is None
        assert states(after)["return_path"] is False
        assert states(after)["spf"] is True

    async def test_a_recently_checked_domain_is_not_checked_again(
        self, sessionmaker: Sessionmaker, settings: Settings, dns_server: DnsServer
    ) -> None:
        detail = await add(sessionmaker)
        await verify(sessionmaker, settings, detail)
        rechecker = DomainRechecker(
            sessionmaker=sessionmaker,
            resolver=domains_service.verification_resolver(settings),
            interval_seconds=3600,
        )

        assert await rechecker.run_once() == 0


class TestRotation:
    async def test_a_new_selector_signs_only_once_its_record_is_published(
        self,
        sessionmaker: Sessionmaker,
        settings: Settings,
        dns_server: DnsServer,
        worker: Worker,
        smtp_server: SmtpServer,
        client: httpx.AsyncClient,
        sender: SenderTokens,
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail)
        await verify(sessionmaker, settings, detail)
        old = detail.keys[0].selector
        async with sessionmaker.begin() as session:
            rotated = await domains_service.rotate_dkim(
                session, workspace_id=detail.domain.workspace_id, name=DOMAIN
            )
        new = next(k.selector for k in rotated.keys if not k.active)
        assert new != old
        scope = {"workspace_id": detail.domain.workspace_id, "name": DOMAIN, "selector": new}

        with pytest.raises(DomainNotVerified):
            async with sessionmaker() as session:
                await domains_service.activate_dkim(
                    session, resolver=domains_service.verification_resolver(settings), **scope
                )
        publish(dns_server, rotated, skip=("spf", "dmarc", "return_path"))
        async with sessionmaker() as session:
            switched = await domains_service.activate_dkim(
                session, resolver=domains_service.verification_resolver(settings), **scope
            )
            await session.commit()
        assert switched.active_selector == new

        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(
                {
                    "from": f"no-reply@{DOMAIN}",
                    "to": ["a@example.com"],
                    "subject": "Hi",
                    "body": "<p>Hi</p>",
                }
            ),
        )
        assert response.status_code == 202, response.text
        await worker.run_until_idle()

        [received] = smtp_server.received
        assert dkim.verify(received.data, dnsfunc=txt_lookup(dns_server))
        assert f"s={new};".encode() in received.data.replace(b"\r\n ", b" ")
        # The old selector stays published and verified during the switch.
        async with sessionmaker() as session:
            after = await domains_service.verify_domain(
                session,
                workspace_id=detail.domain.workspace_id,
                name=DOMAIN,
                resolver=domains_service.verification_resolver(settings),
            )
        assert after.domain.verified_at is not None
        assert all(r.verified for r in after.records)


class TestRecheckInTheWorker:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"domain_recheck_seconds": 0.05})

    async def test_the_running_worker_notices_a_removed_record(
        self,
        sessionmaker: Sessionmaker,
        settings: Settings,
        dns_server: DnsServer,
        worker: Worker,
    ) -> None:
        detail = await add(sessionmaker)
        publish(dns_server, detail)
        await verify(sessionmaker, settings, detail)
        dns_server.remove(f"_dmarc.{DOMAIN}")
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            for _ in range(100):
                async with sessionmaker() as session:
                    if not await domains_service.is_verified(
                        session, workspace_id=detail.domain.workspace_id, name=DOMAIN
                    ):
                        break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running

        async with sessionmaker() as session:
            after = await domains_service.get_domain(
                session, workspace_id=detail.domain.workspace_id, name=DOMAIN
            )
        assert after.domain.verified_at is None
        assert states(after)["dmarc"] is False
