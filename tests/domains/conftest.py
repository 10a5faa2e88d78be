"""Domain fixtures: a stub DNS server the app resolves through, and publishing helpers."""

from collections.abc import Callable, Iterator
from typing import Any

import dns.exception
import dns.resolver
import httpx
import pytest

from posthouse.config import Settings
from posthouse.domains.service import DomainDetail
from tests.dns_server import DnsServer

MAIL_HOST = "mail.posthouse.test"


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, dns_server: DnsServer) -> Settings:
    return settings.model_copy(
        update={
            "dns_resolvers": [dns_server.address],
            "dns_timeout_seconds": 0.3,
            "mail_hostname": MAIL_HOST,
        }
    )


def zone_value(record_type: str, value: str) -> str:
    """A record's value as a zone file writes it: TXT in quoted 255-byte strings."""
    if record_type == "TXT":
        return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    preference, host = value.split()
    return f"{preference} {host}."


def publish(server: DnsServer, detail: DomainDetail, *, skip: tuple[str, ...] = ()) -> None:
    """Publish every record the domain asks for, except those whose purpose is skipped."""
    for record in detail.records:
        if record.purpose not in skip:
            server.add(record.name, record.type, zone_value(record.type, record.value))


def publish_json(server: DnsServer, body: dict[str, Any]) -> None:
    """Publish the records of a domain as the API or ``domain show --json`` lists them."""
    for record in body["records"]:
        server.add(record["name"], record["type"], zone_value(record["type"], record["value"]))


async def add_verified(
    client: httpx.AsyncClient, server: DnsServer, admin: dict[str, str], name: str
) -> None:
    """Add the domain through the API, publish its records and verify it."""
    added = await client.post("/api/v1/domains", headers=admin, json={"name": name})
    publish_json(server, added.json())
    verified = await client.post(f"/api/v1/domains/{name}/verify", headers=admin)
    assert verified.status_code == 200, verified.text


def txt_lookup(server: DnsServer) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` that asks the stub server, as a receiving MTA would ask DNS."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port
    resolver.lifetime = 2.0

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup
