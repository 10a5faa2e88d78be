"""``posthouse domain ...``: add prints the records, verify stores states, show --json."""

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from typer.testing import CliRunner, Result

from posthouse.cli import app
from posthouse.config import Settings, get_settings
from tests.dns_server import DnsServer
from tests.domains.conftest import MAIL_HOST, publish_json

DOMAIN = "yourstore.example"
Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def posthouse(settings: Settings, dns_server: DnsServer) -> Cli:
    """Run the real command line against the test database and stub DNS server."""
    env = {
        "POSTHOUSE_DATABASE_URL": settings.database_url,
        "POSTHOUSE_DNS_RESOLVERS": dns_server.address,
        "POSTHOUSE_DNS_TIMEOUT_SECONDS": "0.3",
        "POSTHOUSE_MAIL_HOSTNAME": MAIL_HOST,
    }

    async def run(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            # The CLI runs its own event loop: give it a thread.
            return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return run


class TestDomainCli:
    async def test_add_prints_the_records_and_verify_confirms_them(
        self, posthouse: Cli, dns_server: DnsServer
    ) -> None:
        added = await posthouse("domain", "add", DOMAIN, "--workspace", "acme")

        assert added.exit_code == 0, added.output
        for expected in (
            "_domainkey." + DOMAIN,
            "v=DKIM1; k=rsa; p=",
            f"v=spf1 a:{MAIL_HOST} ~all",
            f"_dmarc.{DOMAIN}",
            f"bounces.{DOMAIN}",
            f"10 {MAIL_HOST}",
            "spf_helo",
            "v=spf1 a -all",
        ):
            assert expected in added.output
        before = await posthouse("domain", "verify", DOMAIN)
        assert before.exit_code == 1
        shown = json.loads((await posthouse("domain", "show", DOMAIN, "--json")).output)
        publish_json(dns_server, shown)

        after = await posthouse("domain", "verify", DOMAIN, "--json")

        assert after.exit_code == 0, after.output
        body = json.loads(after.output)
        assert body["verified"] is True
        assert sorted((r["purpose"], r["type"], r["verified"]) for r in body["records"]) == [
            ("dkim", "TXT", True),
            ("dmarc", "TXT", True),
            ("return_path", "MX", True),
            ("spf", "TXT", True),
            ("spf_helo", "TXT", True),
        ]

    async def test_rotate_then_activate_switches_the_selector(
        self, posthouse: Cli, dns_server: DnsServer
    ) -> None:
        await posthouse("domain", "add", DOMAIN, "--workspace", "acme")
        rotated = json.loads((await posthouse("domain", "rotate-dkim", DOMAIN, "--json")).output)
        new = next(k["selector"] for k in rotated["dkimSelectors"] if not k["active"])

        early = await posthouse("domain", "activate-dkim", DOMAIN, new)
        publish_json(dns_server, rotated)
        switched = await posthouse("domain", "activate-dkim", DOMAIN, new, "--json")

        assert early.exit_code == 2
        assert "not published yet" in early.output
        assert switched.exit_code == 0, switched.output
        active = [
            k["selector"] for k in json.loads(switched.output)["dkimSelectors"] if k["active"]
        ]
        assert active == [new]

    async def test_an_unknown_domain_is_an_error(self, posthouse: Cli) -> None:
        result = await posthouse("domain", "show", "nothing.example")

        assert result.exit_code == 2
        assert "not found" in result.output
