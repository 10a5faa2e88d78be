"""Fixtures for inbound reports: a delivered email, its VERP address, the samples."""

import string
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Delivery, Domain, Message, Workspace
from posthouse.delivery.envelope import verp_address
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart

SAMPLES = Path(__file__).parent / "samples"
RETURN_PATH_DOMAIN = "bounces.yourstore.example"


@dataclass
class Sent:
    delivery: Delivery
    message: Message
    verp: str

    def sample(self, name: str, **overrides: str) -> bytes:
        """A sample report about this delivery, addressed to its VERP address."""
        values = {
            "verp": self.verp,
            "return_path": self.verp,
            "return_path_domain": RETURN_PATH_DOMAIN,
            "recipient": self.delivery.recipient,
            "message_id": self.message.message_id_header,
            "sender": self.message.from_email,
            **overrides,
        }
        text = string.Template((SAMPLES / f"{name}.eml").read_text()).substitute(values)
        return text.replace("\n", "\r\n").encode()


@pytest.fixture
async def return_path_domain(
    sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
) -> str:
    """The sender's domain, set up with its return-path domain (no DKIM key needed here)."""
    async with sessionmaker.begin() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.name == "acme"))
        assert workspace is not None
        session.add(
            Domain(
                workspace_id=workspace.id,
                name="yourstore.example",
                return_path_domain=RETURN_PATH_DOMAIN,
            )
        )
    return RETURN_PATH_DOMAIN


async def send_one(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    to: list[str],
) -> list[Sent]:
    payload = {"from": sender.email, "to": to, "subject": "Your order", "body": "<p>Thanks</p>"}
    response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
    assert response.status_code == 202, response.text
    await worker.run_until_idle()
    async with sessionmaker() as session:
        rows = (await session.execute(select(Delivery, Message).join(Message))).all()
    secret = settings.secret_key.get_secret_value()
    sent = [
        Sent(d, m, verp_address(d.id, return_path_domain=RETURN_PATH_DOMAIN, secret=secret))
        for d, m in rows
    ]
    return sorted(sent, key=lambda s: to.index(s.delivery.recipient))


@pytest.fixture
async def sent(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    worker: Worker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    return_path_domain: str,
) -> Sent:
    """One email to bob@mailhost.example, delivered (to the test relay) with VERP."""
    return (
        await send_one(client, sender, worker, sessionmaker, settings, ["bob@mailhost.example"])
    )[0]
