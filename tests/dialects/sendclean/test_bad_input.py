"""Seed 003 refuses bad input in its own error shape, and stores and sends nothing: the
native door's threat list (CR/LF in every header, name, address and filename, ambiguous
addresses, invalid base64, oversized bodies and files, unknown templates, wrong JSON
types, deeply nested JSON), plus this door's own fields. Never a 500."""

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.delivery.worker import Worker
from tests.dialects.sendclean.conftest import Account, add_template
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
Edit = Callable[[dict[str, Any]], None]
FILE = base64.b64encode(b"example file").decode()


def valid_message() -> dict[str, Any]:
    return {
        "subject": "Welcome",
        "from_email": "message.from_email@example.com",
        "from_name": "Shop",
        "to": [{"email": "ada@example.com", "name": "Ada", "type": "to"}],
        "html": "<p>Hello</p>",
        "headers": {"X-Unique-Id": "order-1"},
        "attachments": [{"type": "text/plain", "name": "a.txt", "content": FILE}],
        "images": [{"type": "image/png", "name": "logo", "content": FILE}],
    }


def set_(path: str, value: Any) -> Edit:
    """An edit setting ``message.<path>`` (dots and list indexes) to ``value``."""

    def edit(body: dict[str, Any]) -> None:
        target: Any = body["message"]
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return edit


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


# (edit, status, error name)
CASES: dict[str, tuple[Edit, int, str]] = {
    "crlf-in-subject": (set_("subject", "Hi\r\nBcc: eve@example.com"), 400, "ValidationError"),
    "crlf-in-from-name": (
        set_("from_name", "Shop\r\nBcc: eve@example.com"),
        400,
        "ValidationError",
    ),
    "crlf-in-recipient-name": (set_("to.0.name", "Ada\nBcc: x@y.z"), 400, "ValidationError"),
    "crlf-in-recipient": (
        set_("to.0.email", "ada@example.com\r\nRCPT TO:<eve@x.y>"),
        400,
        "ValidationError",
    ),
    "crlf-in-from": (
        set_("from_email", "message.from_email@example.com\r\nX: y"),
        400,
        "ValidationError",
    ),
    "crlf-in-header-value": (
        set_("headers", {"X-Tag": "a\r\nBcc: eve@example.com"}),
        400,
        "ValidationError",
    ),
    "crlf-in-header-name": (set_("headers", {"X-Tag\r\nBcc": "a"}), 400, "ValidationError"),
    "crlf-in-reply-to": (
        set_("headers", {"Reply-To": "a@example.com\r\nBcc: e@x.y"}),
        400,
        "ValidationError",
    ),
    "reply-to-twice": (
        set_("headers", {"Reply-To": "a@example.com", "reply-to": "b@example.com"}),
        400,
        "ValidationError",
    ),
    "unique-id-twice": (
        set_("headers", {"X-Unique-Id": "a", "x-unique-id": "b"}),
        400,
        "ValidationError",
    ),
    "crlf-in-unique-id": (
        set_("headers", {"X-Unique-Id": "a\r\nBcc: e@x.y"}),
        400,
        "ValidationError",
    ),
    "crlf-in-filename": (set_("attachments.0.name", "a\r\n.txt"), 422, "ValidationError"),
    "crlf-in-content-id": (set_("images.0.name", "lo\r\ngo"), 422, "ValidationError"),
    "crlf-in-control": (
        set_("headers", {"X-STes-TrackOpen": "yes\r\nX: y"}),
        400,
        "ValidationError",
    ),
    "path-in-filename": (set_("attachments.0.name", "../../etc/passwd"), 422, "ValidationError"),
    "two-addresses-in-one": (
        set_("to.0.email", "ada@example.com, eve@example.com"),
        400,
        "ValidationError",
    ),
    "angle-address": (set_("to.0.email", "Eve <eve@example.com>"), 400, "ValidationError"),
    "ambiguous-from": (
        set_("from_email", "a@example.com <message.from_email@example.com>"),
        400,
        "ValidationError",
    ),
    "invalid-address": (set_("to.0.email", "not-an-address"), 400, "ValidationError"),
    "no-recipient": (set_("to", []), 400, "ValidationError"),
    "unknown-type": (set_("to.0.type", "reply"), 400, "ValidationError"),
    "invalid-base64": (set_("attachments.0.content", "not base64!"), 400, "ValidationError"),
    "invalid-image-base64": (set_("images.0.content", "%%%%"), 400, "ValidationError"),
    "empty-file": (set_("attachments.0.content", ""), 422, "ValidationError"),
    "program": (set_("attachments.0.name", "setup.exe"), 422, "ValidationError"),
    "image-not-image": (set_("images.0.type", "text/html"), 400, "ValidationError"),
    "six-files": (
        set_("attachments", [{"name": f"f{i}.txt", "content": FILE} for i in range(6)]),
        422,
        "ValidationError",
    ),
    "file-over-5mb": (
        set_("attachments.0.content", base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()),
        413,
        "ValidationError",
    ),
    "html-over-5mb": (set_("html", "x" * (5 * 1024 * 1024 + 1)), 413, "ValidationError"),
    "no-content": (set_("html", None), 400, "ValidationError"),
    "no-subject": (set_("subject", None), 400, "ValidationError"),
    "subject-too-long": (set_("subject", "x" * 999), 400, "ValidationError"),
    "no-from": (set_("from_email", None), 400, "ValidationError"),
    "reserved-header": (set_("headers", {"Bcc": "eve@example.com"}), 400, "ValidationError"),
    "unknown-control": (set_("headers", {"X-STes-Priority": "high"}), 400, "ValidationError"),
    "bad-track-open": (set_("headers", {"X-STes-TrackOpen": "maybe"}), 400, "ValidationError"),
    "bad-track-click": (set_("headers", {"X-STes-TrackClick": "all"}), 400, "ValidationError"),
    "foreign-domain": (
        set_("headers", {"X-STes-SigningDomain": "evil.example"}),
        400,
        "ValidationError",
    ),
    "long-unique-id": (set_("headers", {"X-Unique-Id": "x" * 201}), 400, "ValidationError"),
    "subject-number": (set_("subject", 5), 400, "ValidationError"),
    "to-object": (set_("to", {"email": "ada@example.com"}), 400, "ValidationError"),
    "to-strings": (set_("to", ["ada@example.com"]), 400, "ValidationError"),
    "header-number": (set_("headers", {"X-Tag": 1}), 400, "ValidationError"),
    "headers-list": (set_("headers", ["X-Tag: 1"]), 400, "ValidationError"),
    "unknown-field": (set_("bcc_address", "eve@example.com"), 400, "ValidationError"),
    "nested-value": (set_("subject", nested(50)), 400, "ValidationError"),
}


@pytest.fixture
async def refused(
    sessionmaker: Sessionmaker, worker: Worker, smtp_server: SmtpServer
) -> Callable[[httpx.Response, int, str], Any]:
    """The document's error body with this status and name, and nothing stored or sent."""

    async def check(response: httpx.Response, status: int, name: str) -> str:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"status", "code", "name", "message"}
        assert (body["status"], body["code"], body["name"]) == ("error", -1, name)
        assert 0 < len(body["message"]) <= 1000
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []
        return str(body["message"])

    return check


async def test_the_valid_message_is_accepted(client: httpx.AsyncClient, account: Account) -> None:
    """The cases below differ from this one by one edit each."""
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": valid_message()}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_and_nothing_is_stored_or_sent(
    client: httpx.AsyncClient, account: Account, refused: Any, case: str
) -> None:
    edit, status, name = CASES[case]
    body = {**account.credentials, "message": valid_message()}
    edit(body)

    await refused(await client.post("/messages/sendMail", json=body), status, name)


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"owner_id": 5}', 400),
        (b"[" * 5000 + b"]" * 5000, 400),
        (b"{" + b'"a": 1,' * 200_000 + b'"b": 1}', 400),
        (b"\xff\xfe", 400),
    ],
    ids=["text", "array", "owner-number", "deep-array", "too-many-values", "not-utf8"],
)
async def test_a_body_that_is_no_json_object_is_refused(
    client: httpx.AsyncClient, refused: Any, content: bytes, status: int
) -> None:
    for path in ("/messages/sendMail", "/messages/sendTemplate", "/messages/getMessageInfo"):
        response = await client.post(
            path, content=content, headers={"Content-Type": "application/json"}
        )
        await refused(response, status, "ValidationError")


async def test_a_deeply_nested_value_inside_a_message_is_refused(
    client: httpx.AsyncClient, account: Account, refused: Any
) -> None:
    body = json.dumps({**account.credentials, "message": {**valid_message(), "headers": "@"}})
    deep = '{"a":' * 2000 + '"x"' + "}" * 2000
    response = await client.post(
        "/messages/sendMail",
        content=body.replace('"@"', deep).encode(),
        headers={"Content-Type": "application/json"},
    )
    await refused(response, 400, "ValidationError")


@pytest.mark.parametrize(
    "query",
    [
        "subject=hi%0D%0ABcc:%20eve@example.com",
        "to=ada@example.com,eve@example.com",
        "to=ada@example.com&to=eve@example.com",
        "from_email=nobody",
        "template_id=tpl_01JD0000000000000000000000",
        "subject=",
        "other=1",
        "dynamic_value%5BNAME%5D=a&dynamic_value%5BNAME%5D=b",
    ],
    ids=["crlf", "two-to", "repeated-to", "bad-from", "unknown-template", "no-subject",
         "unknown-parameter", "repeated-value"],
)  # fmt: skip
async def test_the_get_refuses_bad_parameters(
    client: httpx.AsyncClient,
    account: Account,
    sessionmaker: Sessionmaker,
    refused: Any,
    query: str,
) -> None:
    template_id = await add_template(sessionmaker)
    fields = {
        **account.credentials,
        "template_id": template_id,
        "subject": "hello",
        "from_email": "info@example.com",
        "to": "xyz@example.com",
    }
    given = dict(part.split("=", 1) for part in query.split("&"))
    base = "&".join(f"{k}={v}" for k, v in fields.items() if k not in given)
    response = await client.get(f"/messages/sendTemplateHTTPGet?{base}&{query}")

    message = await refused(response, 404 if "tpl_" in query else 400, "ValidationError")
    assert account.token not in message


async def test_a_template_message_with_wrong_types(
    client: httpx.AsyncClient, account: Account, refused: Any
) -> None:
    message = {
        "template_id": ["1"],
        "from_email": "message.from_email@example.com",
        "to": [{"email": "ada@example.com"}],
    }
    response = await client.post(
        "/messages/sendTemplate", json={**account.credentials, "message": message}
    )
    await refused(response, 400, "ValidationError")
