"""History fixtures: a workspace with a verified domain, a use case, keys for seed 004's
permissions, and helpers that send and record events the way posthouse does."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import create_workspace_key
from posthouse.db.base import utcnow
from posthouse.db.models import Delivery, Domain
from posthouse.domains import service as domains_service
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.usecases import service as usecases_service
from posthouse.workspaces import service as workspaces
from tests.conftest import SenderTokens, make_sender, multipart

Sessionmaker = async_sessionmaker[AsyncSession]
DOMAIN = "yourstore.example"


@dataclass
class Workspace:
    id: uuid.UUID
    setup_id: uuid.UUID
    use_case_id: uuid.UUID
    key: dict[str, str]  # channel.send and channel.view
    send_only: dict[str, str]
    view_only: dict[str, str]
    sender: SenderTokens  # the native door's token pair for no-reply@DOMAIN

    @property
    def base(self) -> str:
        return f"/v1/{self.id}/email"


async def _key(sessionmaker: Sessionmaker, workspace: str, scopes: str) -> dict[str, str]:
    async with sessionmaker.begin() as session:
        issued = await create_workspace_key(session, workspace_name=workspace, scopes=scopes)
    return {"Authorization": f"Bearer {issued.token}"}


async def make_workspace(
    sessionmaker: Sessionmaker, name: str = "acme", *, verified: bool = True
) -> Workspace:
    sender = await make_sender(sessionmaker, f"no-reply@{DOMAIN}", workspace=name)
    async with sessionmaker.begin() as session:
        workspace_id = await workspaces.workspace_id(session, name=name)
        detail = await domains_service.add_domain(
            session, workspace_id=workspace_id, name=DOMAIN, mail_host="mail.posthouse.test"
        )
        if verified:
            await session.execute(
                update(Domain).where(Domain.id == detail.domain.id).values(verified_at=utcnow())
            )
        use_case = await usecases_service.add_use_case(
            session, workspace_id=workspace_id, name="receipts", domain=DOMAIN
        )
    return Workspace(
        id=workspace_id,
        setup_id=detail.domain.id,
        use_case_id=use_case.id,
        key=await _key(sessionmaker, name, "channel.send channel.view"),
        send_only=await _key(sessionmaker, name, "channel.send"),
        view_only=await _key(sessionmaker, name, "channel.view"),
        sender=sender,
    )


@pytest.fixture
async def acme(sessionmaker: Sessionmaker) -> Workspace:
    return await make_workspace(sessionmaker)


def form(
    use_case_id: Any,
    to: str = "ada@example.com",
    *,
    subject: str = "Your receipt",
    html: str = "<p>Thanks</p>",
    files: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """httpx ``data=``/``files=`` for seed 004's multipart send."""
    fields = [
        ("use_case_id", (None, str(use_case_id))),
        ("to_address", (None, to)),
        ("subject", (None, subject)),
        ("body_html", (None, html)),
    ]
    return {"files": fields + [("attachments", f) for f in files]}


async def send(
    client: httpx.AsyncClient, ws: Workspace, to: str = "ada@example.com", **kw: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{ws.base}/send", headers=ws.key, **form(ws.use_case_id, to, **kw)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def send_native(
    client: httpx.AsyncClient, ws: Workspace, to: list[str], subject: str = "Native"
) -> str:
    payload = {"from": ws.sender.email, "to": to, "subject": subject, "body": "<p>Hi</p>"}
    response = await client.post("/api/v1/emails", headers=ws.sender.headers, **multipart(payload))
    assert response.status_code == 202, response.text
    return str(response.json()["referenceId"])


async def record(
    sessionmaker: Sessionmaker,
    email_id: str | uuid.UUID,
    kind: EventType,
    *,
    at: datetime | None = None,
    key: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record an event on one recipient's copy through the shared ingest."""
    delivery_id = uuid.UUID(str(email_id))
    async with sessionmaker.begin() as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        await events_service.ingest(
            session,
            [
                events_service.NewEvent(
                    workspace_id=delivery.workspace_id,
                    message_id=delivery.message_id,
                    delivery_id=delivery.id,
                    type=kind,
                    occurred_at=at or utcnow(),
                    dedupe_key=key or f"test:{uuid.uuid4()}",
                    data=data or {},
                )
            ],
        )
