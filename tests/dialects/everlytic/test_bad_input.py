"""The native door's threat list against seed 002's door: each is a 4xx in the door's
own shape, nothing is stored and nothing reaches the SMTP server, never a 500."""

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.dialects.everlytic.conftest import URL, Account, mail
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer

Change = Callable[[dict[str, Any]], object]


def headers(**values: Any) -> Change:
    return lambda m: m["headers"].update(values)


def attachment(**item: Any) -> Change:
    return lambda m: m.update(attachments={"data": [{"filename": "a.txt", "data": "aGk=", **item}]})


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b'"x"' + b"}" * depth


CRLF = "a\r\nBcc: victim@example.com"
SENDER = "no-reply@yourstore.example"


def personalisation(**fields: Any) -> Change:
    return lambda m: m.update(body={"html": "x", "personalisation_fields": fields})


CASES: list[tuple[str, Change, int]] = [
    # CR/LF (header injection) in every header, name, address and filename.
    ("crlf-subject", headers(subject="Hi" + CRLF), 412),
    ("crlf-from-name", headers(**{"from": {"email": SENDER, "name": CRLF}}), 412),
    ("crlf-from-email", headers(**{"from": {"email": SENDER + "\r\nBcc: x@y.z"}}), 412),
    ("crlf-to-name", headers(to=[{"email": "alice@example.com", "name": CRLF}]), 412),
    ("crlf-to-email", headers(to=[{"email": "alice@example.com\r\nBcc: x@y.z"}]), 412),
    ("crlf-cc-name", headers(cc=[{"email": "c@example.com", "name": CRLF}]), 412),
    ("crlf-bcc-email", headers(bcc=[{"email": "b@example.com\nX: y"}]), 412),
    ("crlf-reply-to-name", headers(reply_to={"email": "r@example.com", "name": CRLF}), 412),
    ("crlf-custom-value", headers(custom_headers={"X-A": CRLF}), 412),
    ("crlf-custom-list-value", headers(custom_headers={"X-A": ["ok", CRLF]}), 412),
    ("crlf-custom-name", headers(custom_headers={"X-A\r\nBcc": "v"}), 412),
    ("crlf-message-id", headers(message_id="id" + CRLF), 412),
    ("crlf-filename", attachment(filename="a\r\n.txt"), 400),
    ("slash-filename", attachment(filename="../../etc/passwd"), 400),
    ("crlf-content-id", attachment(content_id="logo>\r\nX: y"), 400),
    ("crlf-group-name", lambda m: m.update(options={"group_name": CRLF}), 412),
    # Ambiguous addresses: one field, several (or hidden) recipients.
    ("two-addresses-in-to", headers(to=[{"email": "a@example.com, b@example.com"}]), 412),
    ("name-in-email", headers(to=[{"email": "Eve <eve@evil.example>"}]), 412),
    ("angle-in-email", headers(to=[{"email": "a@example.com>"}]), 412),
    ("semicolon-in-cc", headers(cc=[{"email": "a@example.com;b@example.com"}]), 412),
    ("two-from", headers(**{"from": {"email": SENDER + ", x@evil.example"}}), 412),
    ("redacted-placeholder", headers(to=[{"email": "[email protected]"}]), 412),
    # Invalid base64 and file paths.
    ("base64-garbage", attachment(data="not base64!"), 412),
    ("base64-bad-padding", attachment(data="aGk"), 412),
    ("path-instead-of-data", attachment(data=None, path="/etc/passwd"), 412),
    ("path-beside-data", attachment(path="C:\\secrets.txt"), 412),
    ("executable", attachment(filename="run.exe", data="TVo="), 400),
    ("empty-file", attachment(data=""), 412),
    # Unknown template.
    ("unknown-template", lambda m: m.update(options={"template_id": "999"}), 412),
    ("malformed-template", lambda m: m.update(options={"template_id": "../../x"}), 412),
    ("template-number-huge", lambda m: m.update(options={"template_id": 10**30}), 412),
    # Wrong JSON types.
    ("to-string", headers(to="alice@example.com"), 412),
    ("to-number", headers(to=[7]), 412),
    ("subject-list", headers(subject=["a"]), 412),
    ("body-list", lambda m: m.update(body=["<p>"]), 412),
    ("html-number", lambda m: m.update(body={"html": 5}), 412),
    ("headers-null-to", headers(to=None), 412),
    ("track-links-string", lambda m: m.update(options={"track_links": "yes please"}), 412),
    ("common-fields-list", personalisation(common_fields=[1]), 412),
    ("unique-fields-object", personalisation(unique_fields={"a": 1}), 412),
    ("unique-fields-stranger", personalisation(unique_fields=[{"eve@x.example": {"a": 1}}]), 412),
    ("attachments-data-object", lambda m: m.update(attachments={"data": {"filename": "a"}}), 412),
    ("custom-header-object", headers(custom_headers={"X-A": {"b": 1}}), 412),
    ("custom-header-reserved", headers(custom_headers={"X-Original-To": "a"}), 412),
    ("redirect-url-number", lambda m: m.update(options={"unsubscribe_redirect_url": 5}), 412),
    ("nul-in-html", lambda m: m.update(body={"html": "a\x00b"}), 412),
    ("subject-too-long", headers(subject="s" * 1000), 412),
    ("too-many-to", headers(to=[{"email": f"r{i}@example.com"} for i in range(1001)]), 412),
]  # fmt: skip


@pytest.fixture
def refused(
    sessionmaker: async_sessionmaker[AsyncSession], worker: Worker, smtp_server: SmtpServer
) -> Callable[[httpx.Response, int], Any]:
    async def check(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert list(body) == ["code", "message", "error"]
        assert body["code"] == status
        [detail] = body["error"]["errors"]
        assert detail["message"] == body["message"]
        assert len(response.content) < 5000
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []
        return body

    return check


@pytest.mark.parametrize(("change", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_in_the_doors_shape_and_nothing_is_stored_or_sent(
    client: httpx.AsyncClient, account: Account, refused: Any, change: Change, status: int
) -> None:
    payload = mail()
    change(payload)

    response = await client.post(URL, json=payload, auth=account.auth)

    await refused(response, status)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b'"mail"',
        b"null",
        b'{"headers": {"subject": "a",}}',
        b"\xff\xfe{}",
        json.dumps(mail()).encode().replace(b"}", b"}}", 1),
        b'{"body": {"personalisation_fields": {"common_fields": ' + nested(2000) + b"}}}",
        b"[" * 100_000,
        b"{}," * 200_000,
    ],
    ids=[
        "empty", "unclosed", "array", "string", "null", "trailing-comma", "not-utf8",
        "extra-brace", "nested-2000", "nested-100000-arrays", "hundreds-of-thousands-of-values",
    ],
)  # fmt: skip
async def test_a_body_that_is_not_a_json_object_is_a_400(
    client: httpx.AsyncClient, account: Account, refused: Any, raw: bytes
) -> None:
    response = await client.post(
        URL, content=raw, auth=account.auth, headers={"Content-Type": "application/json"}
    )

    body = await refused(response, 400)
    assert body["message"].startswith("The request body was formatted improperly")


async def test_an_oversized_attachment_is_a_413(
    client: httpx.AsyncClient, account: Account, refused: Any
) -> None:
    data = base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()
    payload = mail(attachments={"data": [{"filename": "big.txt", "data": data}]})

    response = await client.post(URL, json=payload, auth=account.auth)

    body = await refused(response, 413)
    assert body["error"]["errors"][0]["reason"] == "Attachment"


async def test_an_oversized_html_body_is_a_413(
    client: httpx.AsyncClient, account: Account, refused: Any
) -> None:
    payload = mail(body={"html": "<p>" + "x" * (5 * 1024 * 1024) + "</p>"})

    response = await client.post(URL, json=payload, auth=account.auth)

    await refused(response, 413)


async def test_a_request_over_the_size_limit_is_a_413_before_it_is_read(
    settings: Settings, account: Account, refused: Any
) -> None:
    from posthouse.app import create_app

    small = create_app(settings.model_copy(update={"max_request_bytes": 64 * 1024}))
    payload = mail(body={"html": "x" * 100_000})
    async with small.router.lifespan_context(small):
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post(URL, json=payload, auth=account.auth)

    await refused(response, 413)
