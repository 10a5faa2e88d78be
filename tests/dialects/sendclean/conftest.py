"""Seed 003 fixtures: an account (a workspace key named smtp12345 and the senders of the
document's examples), the document's request bodies as it shows them, and a real HTTP
server for the requests and curl examples."""

import asyncio
import copy
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import create_workspace_key
from posthouse.templates import service as templates_service
from posthouse.templates.rendering import TemplateParts
from posthouse.workspaces import service as workspaces
from tests.conftest import make_sender

Sessionmaker = async_sessionmaker[AsyncSession]
USER_NAME = "smtp12345"
# The document's From addresses, registered as senders of the account.
SENDERS = ("message.from_email@example.com", "info@example.com")


@dataclass
class Account:
    workspace: str
    owner_id: str
    token: str
    smtp_user_name: str

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "owner_id": self.owner_id,
            "token": self.token,
            "smtp_user_name": self.smtp_user_name,
        }


async def make_account(
    sessionmaker: Sessionmaker,
    workspace: str = "acme",
    *,
    user_name: str = USER_NAME,
    scopes: str = "send",
    senders: tuple[str, ...] = SENDERS,
) -> Account:
    for sender in senders:
        await make_sender(sessionmaker, sender, workspace=workspace)
    async with sessionmaker.begin() as session:
        issued = await create_workspace_key(
            session, workspace_name=workspace, name=user_name, scopes=scopes
        )
    return Account(workspace, str(issued.workspace.id), issued.token, user_name)


@pytest.fixture
async def account(sessionmaker: Sessionmaker) -> Account:
    return await make_account(sessionmaker)


async def add_template(
    sessionmaker: Sessionmaker, workspace: str = "acme", *, html: str | None = None
) -> str:
    """A stored template using the document's dynamic fields; its public id."""
    async with sessionmaker.begin() as session:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        detail = await templates_service.add_template(
            session,
            workspace_id=workspace_id,
            name=f"welcome-{uuid.uuid4().hex[:8]}",
            parts=TemplateParts(
                subject="Hello {{ NAME }}",
                html=html or "<p>Hi {{ NAME }}, write to {{ Email }}</p>",
                text=None,
            ),
        )
    return templates_service.public_id(detail.template.id)


# The document's request bodies, as it shows them (its placeholders included).
SEND_MAIL_EXAMPLE: dict[str, Any] = json.loads(
    """
{
"owner_id": "example id",
"token": "example token",
"smtp_user_name":"smtp12345",
"message": {
"html": "Example HTML content",
"text": "Example text content",
"subject": "example subject",
"from_email": "message.from_email@example.com",
"from_name": "Example Name",
"to": [
{
"email": "recipient.email@example.com",
"name": "Recipient Name",
"type": "to"
}
],
"headers": {
"Reply-To": "message.reply@example.com",
"X-Unique-Id": "id "
},
"attachments": [
{
"type": "text/plain",
"name": "myfile.txt",
"content": "ZXhhbXBsZSBmaWxl"
}
],
"images": [
{
"type": "image/png",
"name": "IMAGECID",
"content": "ZXhhbXBsZSBmaWxl"
}
]
}
}
"""
)

SEND_TEMPLATE_EXAMPLE: dict[str, Any] = json.loads(
    """
{
"owner_id": "example id",
"token": "example token",
"smtp_user_name":"smtp12345",
"message": {
"template_id": "Template Id",
"subject": "example subject",
"from_email": "message.from_email@example.com",
"from_name": "Example Name",
"to": [
{
"email": "recipient.email@example.com",
"name": "Recipient Name",
"type": "to"
}
],
"headers": {
"Reply-To": "message.reply@example.com",
"X-Unique-Id": "id "
},
"dynamic_value": {
"NAME": "xyz",
"Email": "info@example.com"
},
"attachments": [
{
"type": "text/plain",
"name": "myfile.txt",
"content": "ZXhhbXBsZSBmaWxl"
}
],
"images": [
{
"type": "image/png",
"name": "IMAGECID",
"content": "ZXhhbXBsZSBmaWxl"
}
]
}
}
"""
)

MESSAGE_INFO_EXAMPLE: dict[str, Any] = json.loads(
    """
{
"owner_id": "example id",
"token": "example token",
"x_unique_id":"test",
"skip_page":0
}
"""
)

# The document's curl line, as it shows it.
TEMPLATE_GET_CURL = (
    "http://api.SendCleanTES_APP_DOMAIN/v1.0/messages/sendTemplateHTTPGet?owner_id=owner_id"
    "&token=token&smtp_user_name=smtp12345&template_id=template_id&subject=hello"
    "&from_email=info%40example.com&to=xyz%40example.com&dynamic_value%5BNAME%5D=xyz"
    "&dynamic_value%5BEmail%5D=xyz%40example.com"
)


def with_account(
    example: dict[str, Any], account: Account, template_id: str | None = None
) -> dict[str, Any]:
    """The example with the account's credentials (and template) instead of placeholders."""
    body = copy.deepcopy(example)
    for name, value in account.credentials.items():
        if name in body:
            body[name] = value
    if template_id is not None:
        body["message"]["template_id"] = template_id
    return body


def curl_url(base_url: str, account: Account, template_id: str) -> str:
    """The document's curl URL with only the base URL and the credentials replaced."""
    return (
        TEMPLATE_GET_CURL.replace("http://api.SendCleanTES_APP_DOMAIN", base_url)
        .replace("owner_id=owner_id", f"owner_id={account.owner_id}")
        .replace("token=token", f"token={account.token}")
        .replace("template_id=template_id", f"template_id={template_id}")
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    """The test's app served by uvicorn on a loopback port (its lifespan already runs)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
