"""Seed 001's statuses and messages, and bad input: every refusal is the door's own
error body, with nothing stored and nothing sent, never a 500."""

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from posthouse.accounts.service import add_sender
from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import Workspace
from posthouse.delivery.worker import Worker
from tests.conftest import PG_URL
from tests.dialects.emailmassivo.conftest import (
    SEND,
    SEND_BY_TEMPLATE,
    Account,
    Sessionmaker,
    add_template,
    error_of,
    mail,
    make_account,
)
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer, free_port


@pytest.fixture
def refused(sessionmaker: Sessionmaker, worker: Worker, smtp_server: SmtpServer) -> Any:
    """Check a refusal: the door's body with ``status``, nothing stored, nothing sent."""

    async def check(response: httpx.Response, status: int) -> str:
        message = error_of(response, status)
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []
        return message

    return check


class TestCredentials:
    @pytest.mark.parametrize("headers", [{}, {"X-Api-Key": ""}, {"X-Api-Key": "not-a-key"}])
    async def test_a_missing_or_malformed_key_is_401_invalid_api_key(
        self, client: httpx.AsyncClient, account: Account, refused: Any, headers: dict[str, str]
    ) -> None:
        response = await client.post(SEND, headers=headers, json=mail())

        assert await refused(response, 401) == "Invalid API key"

    async def test_a_key_that_does_not_exist_is_404(
        self, client: httpx.AsyncClient, account: Account, refused: Any
    ) -> None:
        altered = account.key[:-4] + ("aaaa" if not account.key.endswith("aaaa") else "bbbb")

        response = await client.post(SEND, headers={"X-Api-Key": altered}, json=mail())

        assert await refused(response, 404) == "ExternalMailApiKey not found"

    async def test_a_key_without_the_send_scope_is_403_not_active(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, refused: Any
    ) -> None:
        admin_only = await make_account(sessionmaker, scopes="admin")

        response = await client.post(SEND, headers=admin_only.headers, json=mail())

        assert await refused(response, 403) == "API key is not active"

    async def test_another_workspaces_sender_is_404_user_domain_not_found(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: Sessionmaker,
        refused: Any,
    ) -> None:
        async with sessionmaker.begin() as session:
            await add_sender(session, workspace_name="other", email="ceo@elsewhere.example")

        response = await client.post(
            SEND, headers=account.headers, json=mail(**{"from": {"email": "ceo@elsewhere.example"}})
        )

        assert await refused(response, 404) == "User Domain not found"


class TestAccountState:
    async def test_the_monthly_quota_used_up_is_402(
        self, client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
    ) -> None:
        await _set(sessionmaker, account, monthly_quota=1)
        first = await client.post(SEND, headers=account.headers, json=mail())

        second = await client.post(SEND, headers=account.headers, json=mail(subject="Two"))

        assert first.status_code == 200, first.text
        assert error_of(second, 402) == "Not enough resources on the user balance"
        assert (await stored_rows(sessionmaker))["message"] == 1

    async def test_a_suspended_workspace_is_403(
        self, client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker, refused: Any
    ) -> None:
        await _set(sessionmaker, account, suspended_at=utcnow(), suspension_reason="bounces")

        response = await client.post(SEND, headers=account.headers, json=mail())

        assert await refused(response, 403) == "API key is not active"

    async def test_an_unreachable_database_is_503_with_retry_after(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        if PG_URL:
            from sqlalchemy import make_url

            dead = make_url(settings.database_url).set(port=free_port()).render_as_string(False)
        else:
            dead = f"sqlite+aiosqlite:///{tmp_path}/missing/posthouse.db"
        app = create_app(settings.model_copy(update={"database_url": dead}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.post(SEND, headers={"X-Api-Key": "phk_x.y"}, json=mail())

        message = error_of(response, 503)
        assert message == "Email processing service is temporarily unavailable"
        assert response.headers["Retry-After"] == "5"


async def _set(sessionmaker: Sessionmaker, account: Account, **values: Any) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            update(Workspace).where(Workspace.name == account.workspace).values(**values)
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# (id, the mail's fields replaced, status, message or its start)
THREATS: list[tuple[str, dict[str, Any], int, str]] = [
    ("crlf-subject", {"subject": "Hi\r\nBcc: x@evil.example"}, 400, "mail.subject contains"),
    ("lf-to-name", {"to": {"email": "a@example.org", "name": "A\nBcc: x@e.example"}}, 400,
     "mail.to: display name contains control"),
    ("crlf-to-email", {"to": {"email": "a@example.org\r\nRCPT TO:<x@e.example>"}}, 400,
     "mail.to: ambiguous address"),
    ("crlf-from-name", {"from": {"email": "no-reply@yourstore.example", "name": "S\r\nX: y"}},
     400, "mail.from: display name contains control"),
    ("crlf-cc", {"cc": "bob@example.org\r\nBcc: x@evil.example"}, 400,
     "mail.cc: address contains control"),
    ("crlf-header-value", {"headers": {"X-Tag": "a\r\nBcc: x@evil.example"}}, 400,
     "header X-Tag contains control characters"),
    ("bad-header-name", {"headers": {"X Tag\r\n": "a"}}, 400, "invalid header name"),
    ("structural-header", {"headers": {"Bcc": "x@evil.example"}}, 400, "header Bcc is set"),
    ("crlf-filename", {"attachments": [{"a\r\nb.txt": _b64(b"x")}]}, 400,
     "Attachments parse failed"),
    ("path-filename", {"attachments": [{"../../etc/passwd": _b64(b"x")}]}, 400,
     "Attachments parse failed"),
    ("ambiguous-to", {"to": {"email": "alice@example.org <bob@example.org>"}}, 400,
     "mail.to: ambiguous"),
    ("ambiguous-from", {"from": {"email": "x@evil.example <no-reply@yourstore.example>"}},
     400, "mail.from: ambiguous"),
    ("ambiguous-cc", {"cc": "alice@example.org)<bob@example.org>"}, 400, "mail.cc: ambiguous"),
    ("ambiguous-bcc", {"bcc": 'Bo"b <bob@example.org>'}, 400, "mail.bcc: ambiguous"),
    ("two-in-to", {"to": {"email": "a@example.org, b@example.org"}}, 400, "mail.to: ambiguous"),
    ("bidi-name", {"to": {"email": "a@example.org", "name": "\u202eevil"}}, 400,
     "mail.to: display name contains bidirectional"),
    ("invalid-base64", {"attachments": [{"a.pdf": "not base64!"}]}, 400,
     "Attachments parse failed"),
    ("attachment-not-text", {"attachments": [{"a.pdf": 12}]}, 400, "Attachments parse failed"),
    ("attachments-not-a-list", {"attachments": {"a.pdf": _b64(b"x")}}, 400,
     "Attachments parse failed"),
    ("empty-attachment", {"attachments": [{"a.pdf": ""}]}, 400, "Attachments parse failed"),
    ("six-attachments", {"attachments": [{f"{i}.txt": _b64(b"x")} for i in range(6)]}, 400,
     "Attachments parse failed"),
    ("program", {"attachments": [{"setup.exe": _b64(b"MZ\x90\x00")}]}, 400,
     "Attachments type forbidden"),
    ("program-renamed", {"attachments": [{"invoice.pdf": _b64(b"\x7fELF\x02\x01\x01")}]}, 400,
     "Attachments type forbidden"),
    ("oversized-attachment", {"attachments": [{"big.bin": _b64(b"x" * (5 * 2**20 + 1))}]},
     400, "Attachments size more than allowed"),
    ("oversized-html", {"html": "x" * (5 * 2**20 + 1)}, 413, "mail.html is larger than"),
    ("preheader-too-long", {"previewTitle": "x" * 256}, 400, "invalid preheader"),
    ("subject-number", {"subject": 42}, 400, "mail.subject: Input should be a valid string"),
    ("to-a-string", {"to": "a@example.org"}, 400, "mail.to: Input should be"),
    ("cc-a-number", {"cc": 7}, 400, "mail.cc must be a string of addresses"),
    ("headers-a-list", {"headers": ["X-A: b"]}, 400, "mail.headers must be an object"),
    ("header-number", {"headers": {"X-A": 1}}, 400, "header X-A must be a string"),
    ("header-list", {"headers": {"X-A": ["b", "c"]}}, 400, "header X-A must be a string"),
    ("unknown-field", {"replyTo": "a@example.org"}, 400, "unknown field 'mail.replyTo'"),
    ("no-body", {"html": None}, 400, "mail.html is required"),
    ("no-subject", {"subject": None}, 400, "mail.subject is required"),
    ("too-many-cc", {"cc": ",".join(f"c{i}@example.org" for i in range(51))}, 400,
     "mail.cc accepts at most 50"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [pytest.param(f, s, m, id=name) for name, f, s, m in THREATS],
)
async def test_bad_input_is_refused_in_the_doors_shape_storing_and_sending_nothing(
    client: httpx.AsyncClient,
    account: Account,
    refused: Any,
    fields: dict[str, Any],
    status: int,
    message: str,
) -> None:
    body = mail()
    body["mail"].update(fields)

    response = await client.post(SEND, headers=account.headers, json=body)

    assert (await refused(response, status)).startswith(message)


def _nested_json(field: str, depth: int) -> bytes:
    """A body whose ``field`` nests ``depth`` objects (json.dumps refuses this deep)."""
    mail_fields = json.dumps(mail()["mail"])[1:-1]
    nested = '{"a": ' * depth + '"x"' + "}" * depth
    return ('{"mail": {' + mail_fields + f', "{field}": ' + nested + "}}").encode()


@pytest.mark.parametrize(
    ("field", "depth", "message"),
    [
        ("headers", 2000, "body is not valid JSON"),
        ("headers", 1000, "body nests deeper than 64 levels"),
        ("params", 65, "body nests deeper than 64 levels"),
    ],
)
async def test_deeply_nested_json_is_400(
    client: httpx.AsyncClient,
    account: Account,
    sessionmaker: Sessionmaker,
    refused: Any,
    field: str,
    depth: int,
    message: str,
) -> None:
    path = SEND
    content = _nested_json(field, depth)
    if field == "params":
        number = await add_template(sessionmaker, account, html="<p>{{ a }}</p>")
        path = SEND_BY_TEMPLATE
        content = content.replace(
            b'"html": "<p>Hello Alice</p>"', b'"idTemplateMailUser": %d' % number
        )

    response = await client.post(path, headers=account.headers, content=content)

    assert (await refused(response, 400)).startswith(message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "body is not valid JSON"),
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"mail": "x"}', "mail: Input should be"),
        (b'{"idempotencyKey": 5, "mail": {}}', "idempotencyKey: Input should be"),
        (b"\xff\xfe{}", "body is not valid JSON"),
        (b"{}," * 200_000, "body holds more than"),
    ],
    ids=["empty", "broken", "array", "mail-a-string", "key-a-number", "not-utf8", "huge-count"],
)
async def test_a_body_that_is_no_json_object_is_400(
    client: httpx.AsyncClient, account: Account, refused: Any, content: bytes, message: str
) -> None:
    response = await client.post(SEND, headers=account.headers, content=content)

    assert (await refused(response, 400)).startswith(message)


async def test_a_request_over_the_size_limit_is_413(
    client: httpx.AsyncClient, account: Account, refused: Any, settings: Settings
) -> None:
    too_big = b"x" * (settings.max_request_bytes + 1)

    response = await client.post(SEND, headers=account.headers, content=too_big)

    assert (await refused(response, 413)).startswith("Request body larger than")


async def test_template_params_a_template_lacks_are_400(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker, refused: Any
) -> None:
    number = await add_template(sessionmaker, account)
    body = mail(idTemplateMailUser=number, params={"test": "A-1"})
    del body["mail"]["html"]

    response = await client.post(SEND_BY_TEMPLATE, headers=account.headers, json=body)

    assert await refused(response, 400) == "mail.params lacks test1, test2"


@pytest.mark.parametrize("template", ["1", 1.5, True, None])
async def test_a_template_id_that_is_no_integer_is_400(
    client: httpx.AsyncClient, account: Account, refused: Any, template: Any
) -> None:
    body = mail(idTemplateMailUser=template)
    del body["mail"]["html"]

    response = await client.post(SEND_BY_TEMPLATE, headers=account.headers, json=body)

    assert (await refused(response, 400)).startswith("mail.idTemplateMailUser: ")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/v1/external-mails/nope", 404),
        ("GET", "/api/v1/external-mails/send", 405),
    ],
)
async def test_an_unknown_path_or_method_answers_in_the_doors_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)

    error_of(response, status)


async def test_an_idempotency_key_over_256_characters_is_400(
    client: httpx.AsyncClient, account: Account, refused: Any
) -> None:
    response = await client.post(
        SEND, headers=account.headers, json={**mail(), "idempotencyKey": "k" * 257}
    )

    assert await refused(response, 400) == "idempotencyKey is longer than 256 characters"
