"""Seed 004: POST /v1/{workspace_id}/email/send, its errors and its permissions."""

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from posthouse.protections import suppression
from tests.helpers import NOTHING_STORED, deliveries, settle, stored_rows
from tests.history.conftest import Workspace, form, make_workspace, send
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]


def error(response: httpx.Response, status: int, code: str) -> None:
    """Every error of this door has the same body: {"error": {"code", "message"}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


async def test_a_send_is_201_and_is_delivered_from_the_use_case_address(
    client: httpx.AsyncClient,
    acme: Workspace,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    files = [
        ("b-terms.pdf", b"%PDF terms", "application/pdf"),
        ("a-invoice.pdf", b"%PDF invoice", "application/pdf"),
    ]
    response = await client.post(
        f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id, files=files)
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "message_id", "sent_at", "attachment_filenames"}
    assert uuid.UUID(body["id"])
    assert body["message_id"].startswith("<")
    assert body["message_id"].endswith("@yourstore.example>")
    assert body["sent_at"].endswith("Z")
    assert body["attachment_filenames"] == ["b-terms.pdf", "a-invoice.pdf"]
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["ada@example.com"]
    assert b"From: no-reply@yourstore.example" in received.data
    [delivery] = await deliveries(sessionmaker)
    assert str(delivery.id) == body["id"]


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([("../etc/passwd", b"x", "text/plain")], 422, "invalid_attachment"),
        ([("empty.txt", b"", "text/plain")], 422, "invalid_attachment"),
        ([("a.txt", b"1", "text/plain"), ("a.txt", b"2", "text/plain")], 422, "invalid_attachment"),
        ([(f"f{i}.txt", b"x", "text/plain") for i in range(6)], 422, "invalid_attachment"),
        ([("big.bin", b"x" * (5 * 1024 * 1024 + 1), "application/octet-stream")], 413, "too_large"),
    ],
    ids=["path", "empty", "duplicate", "six", "over-5MB"],
)
async def test_attachments_outside_the_rules_store_nothing(
    client: httpx.AsyncClient,
    acme: Workspace,
    sessionmaker: Sessionmaker,
    files: list[tuple[str, bytes, str]],
    status: int,
    code: str,
) -> None:
    response = await client.post(
        f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id, files=files)
    )

    error(response, status, code)
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_a_body_over_1_mb_is_413(client: httpx.AsyncClient, acme: Workspace) -> None:
    html = "<p>" + "x" * (1024 * 1024) + "</p>"
    response = await client.post(
        f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id, html=html)
    )
    error(response, 413, "too_large")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", ""),
        ("subject", "x" * 999),
        ("to_address", "not-an-address"),
        ("subject", "a\r\nBcc: x@y.z"),
    ],
)
async def test_invalid_fields_are_422(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker, field: str, value: str
) -> None:
    kwargs = {"to": value} if field == "to_address" else {"subject": value}
    response = await client.post(
        f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id, **kwargs)
    )
    error(response, 422, "invalid_request")
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_a_missing_field_is_422(client: httpx.AsyncClient, acme: Workspace) -> None:
    fields = form(acme.use_case_id)["files"]
    response = await client.post(
        f"{acme.base}/send",
        headers=acme.key,
        files=[f for f in fields if f[0] != "body_html"],
    )
    error(response, 422, "invalid_request")


async def test_a_suppressed_recipient_is_422_message_rejected(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker.begin() as session:
        await suppression.add(
            session, workspace_id=acme.id, address="ada@example.com", created_by="test"
        )
    response = await client.post(f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id))
    error(response, 422, "message_rejected")
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_an_unknown_use_case_or_another_workspaces_is_404(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
) -> None:
    other = await make_workspace(sessionmaker, "globex")
    for use_case_id in (uuid.uuid4(), other.use_case_id):
        response = await client.post(f"{acme.base}/send", headers=acme.key, **form(use_case_id))
        error(response, 404, "not_found")
    assert await stored_rows(sessionmaker) == NOTHING_STORED


class TestUnverifiedSetup:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"require_verified_domains": True})

    async def test_a_setup_whose_dns_is_not_verified_is_409(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        ws = await make_workspace(sessionmaker, "initech", verified=False)
        response = await client.post(f"{ws.base}/send", headers=ws.key, **form(ws.use_case_id))
        error(response, 409, "setup_not_verified")
        assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_the_same_idempotency_key_sends_once(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
) -> None:
    headers = {**acme.key, "Idempotency-Key": "order-1"}
    first = await client.post(f"{acme.base}/send", headers=headers, **form(acme.use_case_id))
    again = await client.post(f"{acme.base}/send", headers=headers, **form(acme.use_case_id))
    other = await client.post(
        f"{acme.base}/send", headers=headers, **form(acme.use_case_id, subject="Changed")
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    error(other, 409, "idempotency_conflict")
    assert (await stored_rows(sessionmaker))["delivery"] == 1


async def test_the_quota_applies(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
) -> None:
    from posthouse.workspaces import service as workspaces

    async with sessionmaker.begin() as session:
        await workspaces.update(
            session, name="acme", changes=workspaces.WorkspaceChanges(monthly_quota=1)
        )
    await send(client, acme)
    response = await client.post(f"{acme.base}/send", headers=acme.key, **form(acme.use_case_id))
    error(response, 429, "quota_exceeded")


class TestPermissions:
    async def test_no_key_is_401(self, client: httpx.AsyncClient, acme: Workspace) -> None:
        response = await client.post(f"{acme.base}/send", **form(acme.use_case_id))
        error(response, 401, "unauthenticated")
        response = await client.get(acme.base, params={"use_case_id": str(acme.use_case_id)})
        error(response, 401, "unauthenticated")

    async def test_a_key_without_the_permission_is_403(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        sent = await send(client, acme)
        response = await client.post(
            f"{acme.base}/send", headers=acme.view_only, **form(acme.use_case_id)
        )
        error(response, 403, "forbidden")
        for path in ("", "/event", f"/{sent['id']}", f"/{sent['id']}/body"):
            response = await client.get(
                acme.base + path,
                headers=acme.send_only,
                params={"use_case_id": str(acme.use_case_id)},
            )
            error(response, 403, "forbidden")
        assert (await stored_rows(sessionmaker))["delivery"] == 1

    async def test_another_workspace_a_wrong_path_and_a_missing_id_look_the_same(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        sent = await send(client, acme)
        other = await make_workspace(sessionmaker, "globex")
        cases = [
            # acme's email through globex's key, in acme's path
            (acme.base, other.key, sent["id"]),
            # acme's key with globex's workspace id in the path
            (other.base, acme.key, sent["id"]),
            # a workspace id that is no UUID, and an email that does not exist
            ("/v1/not-a-uuid/email", acme.key, sent["id"]),
            (acme.base, acme.key, str(uuid.uuid4())),
            (acme.base, acme.key, "not-a-uuid"),
        ]
        bodies = []
        for base, headers, email_id in cases:
            for path in (f"/{email_id}", f"/{email_id}/body", f"/{email_id}/attachment/a.pdf"):
                response = await client.get(base + path, headers=headers)
                error(response, 404, "not_found")
                bodies.append(response.json())
        # Permission is checked after the workspace: a view-less key of another workspace
        # still gets 404, not 403.
        response = await client.get(f"{acme.base}/{sent['id']}", headers=other.send_only)
        error(response, 404, "not_found")
        response = await client.post(
            f"{other.base}/send", headers=acme.key, **form(acme.use_case_id)
        )
        error(response, 404, "not_found")
        assert len({str(b) for b in bodies}) == 1
