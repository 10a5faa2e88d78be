"""Seed 002's credentials: HTTP Basic with the workspace's name and a workspace key."""

import base64
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import add_sender, create_workspace_key

URL = "/transactional/email/v1/mail"
WORKSPACE = "acme"
SENDER = "no-reply@yourstore.example"


@dataclass(frozen=True)
class Account:
    workspace: str
    key: str
    sender: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.workspace, self.key)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": basic(self.workspace, self.key)}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def make_account(
    sessionmaker: async_sessionmaker[AsyncSession],
    workspace: str = WORKSPACE,
    sender: str = SENDER,
    scopes: str = "admin send",
) -> Account:
    async with sessionmaker.begin() as session:
        await add_sender(session, workspace_name=workspace, email=sender)
        issued = await create_workspace_key(session, workspace_name=workspace, scopes=scopes)
    return Account(workspace, issued.token, sender)


@pytest.fixture
async def account(sessionmaker: async_sessionmaker[AsyncSession]) -> Account:
    return await make_account(sessionmaker)


def mail(**overrides: object) -> dict[str, object]:
    """A small valid request, with top-level sections replaced by ``overrides``."""
    body: dict[str, object] = {
        "body": {"html": "<p>Hello</p>", "text": "Hello"},
        "headers": {
            "subject": "Hello",
            "from": {"email": SENDER, "name": "Shop"},
            "to": [{"email": "alice@example.com", "name": "Alice"}],
        },
    }
    body.update(overrides)
    return body
