"""Seed 001's door: a workspace key (X-Api-Key) whose workspace sends as
no-reply@yourstore.example and as anyone at example.com (the document's examples send
from user@example.com), and a helper for its error body."""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import add_sender, create_workspace_key
from posthouse.templates import service as templates_service
from posthouse.templates.rendering import TemplateParts

Sessionmaker = async_sessionmaker[AsyncSession]
SEND = "/api/v1/external-mails/send"
SEND_BY_TEMPLATE = "/api/v1/external-mails/send-by-template"


@dataclass(frozen=True)
class Account:
    key: str
    workspace: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.key}


async def make_account(
    sessionmaker: Sessionmaker, workspace: str = "acme", scopes: str = "admin send"
) -> Account:
    async with sessionmaker.begin() as session:
        await add_sender(session, workspace_name=workspace, email="no-reply@yourstore.example")
        await add_sender(session, workspace_name=workspace, email="@example.com")
        issued = await create_workspace_key(session, workspace_name=workspace, scopes=scopes)
    return Account(issued.token, workspace)


@pytest.fixture
async def account(sessionmaker: Sessionmaker) -> Account:
    return await make_account(sessionmaker)


async def add_template(
    sessionmaker: Sessionmaker,
    account: Account,
    *,
    subject: str = "Order {{ test }}",
    html: str = "<p>Hello {{ test1 }}, your order {{ test }} ships {{ test2 }}.</p>",
    text: str | None = None,
) -> int:
    """A stored template of the account's workspace; its number (idTemplateMailUser)."""
    from posthouse.accounts.service import get_or_create_workspace

    async with sessionmaker.begin() as session:
        workspace = await get_or_create_workspace(session, name=account.workspace)
        detail = await templates_service.add_template(
            session,
            workspace_id=workspace.id,
            name=f"t{subject}{html}"[:100],
            parts=TemplateParts(subject, html, text),
        )
        return int(detail.template.number)


def mail(**fields: Any) -> dict[str, Any]:
    """A valid /send body, with ``fields`` replacing the mail's."""
    return {
        "idempotencyKey": None,
        "mail": {
            "to": {"email": "alice@example.org", "name": "Alice"},
            "from": {"email": "no-reply@yourstore.example", "name": "Your Store"},
            "subject": "Welcome",
            "html": "<p>Hello Alice</p>",
            **fields,
        },
    }


def error_of(response: httpx.Response, status: int) -> str:
    """The door's error body ({"message", "error", "statusCode"}); its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["message", "error", "statusCode"], body
    assert body["statusCode"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["message"], str)
    assert 0 < len(body["message"]) <= 1000
    return str(body["message"])
