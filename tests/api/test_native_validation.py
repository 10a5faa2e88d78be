"""Bad input: a clear 4xx in seed 000's error shape, nothing stored, nothing sent."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer

VALID = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Welcome to our store!",
    "body": "<h1>Thanks for joining</h1>",
}
BOUNDARY = "posthouse-test-boundary"


@pytest.fixture
async def refused(sessionmaker: async_sessionmaker, worker: Worker, smtp_server: SmtpServer) -> Any:
    """Check a response is the error shape with ``status``, and that nothing was stored
    or sent (the worker runs and the SMTP server receives nothing)."""

    async def check(response: httpx.Response, status: int, message: str | None = None) -> str:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"status", "message"}
        assert body["status"] == status
        assert body["message"]
        if message is not None:
            assert body["message"] == message
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []
        return str(body["message"])

    return check


def raw_multipart(parts: list[tuple[str, str | None, bytes, str | None]]) -> bytes:
    """A multipart body built by hand, so header bytes reach the server as written."""
    out = b""
    for name, filename, data, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def post_raw(
    client: httpx.AsyncClient, sender: SenderTokens, body: bytes, path: str = "/api/v1/emails"
) -> httpx.Response:
    headers = {**sender.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await client.post(path, headers=headers, content=body)


class TestPayload:
    async def test_a_missing_payload_part(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        body = raw_multipart([("attachments", "a.pdf", b"%PDF", "application/pdf")])

        response = await post_raw(client, sender, body)

        await refused(response, 400, "exactly one 'payload' part is required")

    async def test_two_payload_parts(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        part = ("payload", None, json.dumps(VALID).encode(), "application/json")

        response = await post_raw(client, sender, raw_multipart([part, part]))

        await refused(response, 400, "exactly one 'payload' part is required")

    @pytest.mark.parametrize("text", ["{not json", "", '"a string"', "[1, 2]", "\xff\xfe"])
    async def test_a_payload_that_is_not_a_json_object(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, text: str
    ) -> None:
        body = raw_multipart([("payload", None, text.encode("latin-1"), "application/json")])

        response = await post_raw(client, sender, body)

        message = await refused(response, 400)
        assert message in {"payload is not valid JSON", "payload must be a JSON object"}

    async def test_a_payload_with_a_utf8_byte_order_mark_is_read(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        # RFC 8259 lets a parser ignore one; some clients still write it.
        data = b"\xef\xbb\xbf" + json.dumps({**VALID, "subject": "Grüße"}).encode()
        body = raw_multipart([("payload", None, data, "application/json")])

        response = await post_raw(client, sender, body)

        assert response.status_code == 202, response.text
        assert response.json()["subject"] == "Grüße"

    async def test_a_json_request_body_instead_of_multipart(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        response = await client.post("/api/v1/emails", headers=sender.headers, json=VALID)

        message = await refused(response, 400)
        assert "multipart/form-data" in message

    async def test_a_part_without_a_name(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        body = (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\n{{}}\r\n--{BOUNDARY}--\r\n"
        ).encode()

        response = await post_raw(client, sender, body)

        message = await refused(response, 400)
        assert message.startswith("malformed multipart body")

    async def test_a_missing_boundary(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        headers = {**sender.headers, "Content-Type": "multipart/form-data"}

        response = await client.post("/api/v1/emails", headers=headers, content=b"--x--")

        message = await refused(response, 400)
        assert message.startswith("malformed multipart body")

    async def test_a_truncated_multipart_body(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        body = raw_multipart([("payload", None, json.dumps(VALID).encode(), "application/json")])

        response = await post_raw(client, sender, body[: len(body) // 2])

        await refused(response, 400)

    @pytest.mark.parametrize(
        ("field", "value", "where"),
        [
            ("to", "alice@example.com", "to"),
            ("to", [1], "to"),
            ("cc", "manager@example.com", "cc"),
            ("subject", 42, "subject"),
            ("body", {"html": "<p>hi</p>"}, "body"),
            ("from", ["no-reply@yourstore.example"], "from"),
            ("headers", ["X-Tag: 1"], "headers"),
            ("headers", {"X-Count": 1}, "headers"),
        ],
    )
    async def test_wrong_types(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        refused: Any,
        field: str,
        value: object,
        where: str,
    ) -> None:
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart({**VALID, field: value})
        )

        message = await refused(response, 400)
        assert message.startswith(where)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("from", None, "from is required"),
            ("subject", None, "subject is required"),
            ("subject", "   ", "subject is required"),
            ("body", None, "body is required"),
            ("body", "", "body is required"),
            ("to", [], "to must contain at least one valid email"),
        ],
    )
    async def test_required_fields(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        refused: Any,
        field: str,
        value: object,
        message: str,
    ) -> None:
        payload = {**VALID, field: value}
        if value is None:
            del payload[field]

        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))

        await refused(response, 400, message)


class TestAddresses:
    @pytest.mark.parametrize(
        "address",
        [
            "not-an-email",
            "alice@",
            "@example.com",
            "alice@@example.com",
            "alice@example..com",
            "alice@example.com, bob@example.com",
            "alice@example.com;bob@example.com",
            "alice@example.com bob@example.com",
            "Alice <alice@example.com> <bob@example.com>",
            "Alice <alice@example.com>, Bob <bob@example.com>",
            "<>",
            "Alice <>",
            "josé@example.com",
            "",
        ],
    )
    async def test_invalid_or_ambiguous_recipients(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, address: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart({**VALID, "to": ["bob@example.com", address]}),
        )

        message = await refused(response, 400)
        assert message.startswith("to")

    @pytest.mark.parametrize("field", ["from", "to", "cc", "replyTo"])
    async def test_overlong_display_names(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, field: str
    ) -> None:
        address = "N" * 201 + " <no-reply@yourstore.example>"
        value = address if field == "from" else [address]

        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart({**VALID, field: value})
        )

        await refused(response, 400, f"{field}: display name is longer than 200 characters")

    @pytest.mark.parametrize(
        ("field", "limit", "deliveries"),
        # VALID sends to alice; replyTo addresses are no recipients.
        [("to", 1000, 1000), ("cc", 50, 51), ("bcc", 50, 51), ("replyTo", 50, 1)],
    )
    async def test_list_limits(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        refused: Any,
        sessionmaker: async_sessionmaker,
        field: str,
        limit: int,
        deliveries: int,
    ) -> None:
        addresses = [f"user{i}@example.com" for i in range(limit + 1)]

        over = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart({**VALID, field: addresses})
        )

        await refused(over, 400, f"{field} accepts at most {limit} addresses")
        at_limit = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart({**VALID, field: addresses[:limit]}),
        )
        assert at_limit.status_code == 202, at_limit.text
        assert len(at_limit.json()[field]) == limit
        assert (await stored_rows(sessionmaker))["delivery"] == deliveries


CONTROL = ["\r", "\n", "\r\n", "\x00"]


def _injected(field: str, char: str) -> dict[str, Any]:
    """A valid payload with ``char`` smuggled into one header value, name or address."""
    smuggle = f"{char}Bcc: victim@evil.example"
    cases: dict[str, dict[str, Any]] = {
        "from address": {"from": f"no-reply@yourstore.example{smuggle}"},
        "from name": {"from": f"Store{smuggle} <no-reply@yourstore.example>"},
        "to address": {"to": [f"alice@example.com{smuggle}"]},
        "to name": {"to": [f"Alice{smuggle} <alice@example.com>"]},
        "to quoted name": {"to": [f'"Alice{smuggle}" <alice@example.com>']},
        "cc address": {"cc": [f"manager@example.com{char}"]},
        "cc name": {"cc": [f"Manager{char} <manager@example.com>"]},
        "bcc address": {"bcc": [f"{char}audit@example.com"]},
        "replyTo address": {"replyTo": [f"support@yourstore.example{smuggle}"]},
        "replyTo name": {"replyTo": [f"Support{smuggle} <support@yourstore.example>"]},
        "subject": {"subject": f"Hello{smuggle}"},
        "subject end": {"subject": f"Hello{char}"},
        "header value": {"headers": {"X-Campaign": f"spring{smuggle}"}},
        "header name": {"headers": {f"X-Campaign{char}Bcc": "x"}},
    }
    return {**VALID, **cases[field]}


INJECTION_FIELDS = [
    "from address", "from name", "to address", "to name", "to quoted name", "cc address",
    "cc name", "bcc address", "replyTo address", "replyTo name", "subject", "subject end",
    "header value", "header name",
]  # fmt: skip


class TestHeaderInjection:
    @pytest.mark.parametrize("char", CONTROL, ids=["CR", "LF", "CRLF", "NUL"])
    @pytest.mark.parametrize("field", INJECTION_FIELDS)
    async def test_control_characters_in_a_send(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, field: str, char: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(_injected(field, char))
        )

        await refused(response, 400)

    @pytest.mark.parametrize("field", [*INJECTION_FIELDS, "body", "text"])
    async def test_a_lone_surrogate_that_no_encoding_can_carry(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, field: str
    ) -> None:
        # JSON can spell one ("\ud800"); it would fail when the message is encoded.
        payload = (
            {**VALID, field: "x\ud800y"}
            if field in ("body", "text")
            else _injected(field, "\ud800")
        )
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))

        await refused(response, 400)

    @pytest.mark.parametrize("char", CONTROL, ids=["CR", "LF", "CRLF", "NUL"])
    @pytest.mark.parametrize("where", ["from", "subject", "to"])
    async def test_control_characters_in_a_reply_by_subject(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, where: str, char: str
    ) -> None:
        params = {"from": "no-reply@yourstore.example", "subject": "Order Update"}
        payload: dict[str, Any] = {"body": "<p>hi</p>"}
        if where == "to":
            payload["to"] = [f"alice@example.com{char}Bcc: victim@evil.example"]
        else:
            params[where] = f"{params[where]}{char}Bcc: victim@evil.example"

        response = await client.post(
            "/api/v1/emails/reply", params=params, headers=sender.headers, **multipart(payload)
        )

        await refused(response, 400)

    @pytest.mark.parametrize("char", CONTROL, ids=["CR", "LF", "CRLF", "NUL"])
    async def test_control_characters_in_an_attachment_filename(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, char: str
    ) -> None:
        payload = ("payload", None, json.dumps(VALID).encode(), "application/json")
        name = f"invoice{char}.pdf"
        body = raw_multipart([payload, ("attachments", name, b"%PDF-1.4", "application/pdf")])

        response = await post_raw(client, sender, body)

        assert response.status_code in (400, 422), response.text
        await refused(response, response.status_code)


class TestAttachments:
    @pytest.mark.parametrize(
        "filename",
        [
            "../../etc/passwd",
            "..\\..\\windows\\system.ini",
            "/etc/passwd",
            "reports/2026.pdf",
            "..",
            ".",
            " leading.pdf",
            "trailing.pdf.",
            "con.txt",
            "NUL",
            "a\u2028b.pdf",
            "x" * 256 + ".pdf",
        ],
    )
    async def test_unsafe_filenames(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, filename: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [(filename, b"data", "application/octet-stream")]),
        )

        message = await refused(response, 422)
        assert "filename" in message

    @pytest.mark.parametrize("filename", ["setup.exe", "run.BAT", "macro.vbs", "app.js"])
    async def test_forbidden_types(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, filename: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [(filename, b"MZ", "application/octet-stream")]),
        )

        message = await refused(response, 422)
        assert message.startswith("Attachments type forbidden")

    async def test_an_empty_file_and_too_many_files(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        empty = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [("empty.txt", b"", "text/plain")]),
        )
        await refused(empty, 422)

        six = [(f"file{i}.txt", b"data", "text/plain") for i in range(6)]
        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(VALID, six)
        )

        await refused(response, 422, "at most 5 attachments per email")

    async def test_a_non_ascii_filename_is_kept(
        self, client: httpx.AsyncClient, sender: SenderTokens, worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:  # fmt: skip
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [("Rechnung März 2026 €.pdf", b"%PDF", "application/pdf")]),
        )

        assert response.status_code == 202, response.text
        await worker.run_until_idle()
        [part] = smtp_server.received[0].message().iter_attachments()
        assert part.get_filename() == "Rechnung März 2026 €.pdf"


class TestHeaders:
    @pytest.mark.parametrize("name", ["Bcc", "bcc", "From", "Message-ID", "Content-Type"])
    async def test_headers_posthouse_writes_cannot_be_given(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, name: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart({**VALID, "headers": {name: "victim@evil.example"}}),
        )

        message = await refused(response, 400)
        assert "set by posthouse" in message

    @pytest.mark.parametrize("name", ["X Campaign", "X:Campaign", "", "X-Ünicode"])
    async def test_invalid_header_names(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, name: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart({**VALID, "headers": {name: "x"}}),
        )

        await refused(response, 400)


LIMIT = 64 * 1024
CHUNK = 8 * 1024


class TestRequestSize:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"max_request_bytes": LIMIT})

    async def test_a_declared_length_over_the_limit_is_refused_before_reading(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        yielded = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal yielded
            for _ in range(LIMIT * 4 // CHUNK):
                yielded += CHUNK
                yield b"x" * CHUNK

        headers = {
            **sender.headers,
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(LIMIT * 4),
        }
        response = await client.post("/api/v1/emails", headers=headers, content=body())

        await refused(response, 413)
        assert yielded <= CHUNK

    async def test_a_chunked_body_is_cut_off_soon_after_the_limit(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        yielded = 0
        head = raw_multipart(
            [("payload", None, json.dumps(VALID).encode(), "application/json")]
        ).removesuffix(f"--{BOUNDARY}--\r\n".encode())
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments"; '
            'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()

        async def body() -> AsyncIterator[bytes]:
            nonlocal yielded
            yielded += len(head)
            yield head
            for _ in range(100 * LIMIT // CHUNK):  # 6.4 MB if nobody stops reading
                yielded += CHUNK
                yield b"x" * CHUNK

        headers = {**sender.headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        response = await client.post("/api/v1/emails", headers=headers, content=body())

        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        await refused(response, 413)
        assert LIMIT < yielded <= LIMIT + CHUNK

    async def test_a_body_just_under_the_limit_is_accepted(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [("notes.txt", b"n" * (LIMIT - 2048), "text/plain")]),
        )

        assert response.status_code == 202, response.text
