"""Issue 15: what an abuse probe found. Each refusal is a 4xx in seed 000's error shape,
with nothing stored and nothing sent; a slow or huge request never stops another."""

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_sender, make_workspace_key, multipart
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer

BOUNDARY = "issue15-boundary"
VALID = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Welcome",
    "body": "<p>Hello</p>",
}


@pytest.fixture
async def refused(sessionmaker: async_sessionmaker, worker: Worker, smtp_server: SmtpServer) -> Any:
    """Check a response is seed 000's error shape with ``status``, bounded in size, and
    that nothing was stored or sent."""

    async def check(response: httpx.Response, status: int) -> str:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"status", "message"}, body
        assert body["status"] == status
        assert 0 < len(body["message"]) <= 1000
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []
        return str(body["message"])

    return check


def multipart_body(
    payload: dict[str, Any] | bytes, files: list[tuple[str, bytes, str]] = ()
) -> bytes:  # type: ignore[assignment]
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    out = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="payload"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    for name, content, content_type in files:
        out += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments"; '
                f'filename="{name}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    return out + f"--{BOUNDARY}--\r\n".encode()


def raw_headers(sender: SenderTokens, boundary: str = BOUNDARY) -> dict[str, str]:
    return {**sender.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}


async def paused(body: bytes, *, at: int, until: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body sent in two pieces, the second only once ``until`` is set: a
    client still uploading while the test looks at the server."""
    yield body[:at]
    await until.wait()
    yield body[at:]


async def start_paused(
    client: httpx.AsyncClient, sender: SenderTokens, body: bytes, until: asyncio.Event
) -> "asyncio.Task[httpx.Response]":
    task = asyncio.create_task(
        client.post(
            "/api/v1/emails",
            headers=raw_headers(sender),
            content=paused(body, at=len(body) // 2, until=until),
        )
    )
    await asyncio.sleep(0.05)  # let it send its first half
    return task


async def send(client: httpx.AsyncClient, sender: SenderTokens, **fields: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart({**VALID, **fields})
    )


class TestHugeAddress:
    """1: lengths capped before any parsing, and the parsing linear."""

    async def test_a_one_megabyte_address_is_refused_while_another_request_is_served(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        huge = "a" + " " * (1024 * 1024) + "b"
        finish = asyncio.Event()
        first = await start_paused(
            client, sender, multipart_body({**VALID, "to": [huge]}), until=finish
        )

        health = await client.get("/healthz")

        assert health.status_code == 200
        assert not first.done()
        finish.set()
        message = await refused(await asyncio.wait_for(first, 20), 400)
        assert message.startswith("to: ")

    @pytest.mark.parametrize("spaces", [60_000, 250_000])
    async def test_runs_of_spaces_between_two_tokens_are_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, spaces: int
    ) -> None:
        response = await send(client, sender, cc=["a" + " " * spaces + "b"])

        await refused(response, 400)


class TestSlowUpload:
    """2: nothing touches the database while a body is still arriving."""

    async def test_a_trickling_upload_holds_no_connection_and_others_send_meanwhile(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        # Two senders, and the slow one's tokens not yet cached: the first thing the old
        # code did with them was a database lookup in the request's transaction.
        slow = await make_sender(sessionmaker, "slow@yourstore.example")
        other = await make_sender(sessionmaker, "no-reply@yourstore.example")
        finish = asyncio.Event()
        first = await start_paused(
            client, slow, multipart_body({**VALID, "from": slow.email}), until=finish
        )

        assert app.state.engine.pool.checkedout() == 0
        meanwhile = await asyncio.wait_for(send(client, other, to=["bob@example.com"]), 20)
        assert meanwhile.status_code == 202, meanwhile.text
        assert await worker.run_until_idle() == 1
        assert (await client.get("/healthz")).status_code == 200
        assert not first.done()

        finish.set()
        assert (await asyncio.wait_for(first, 20)).status_code == 202
        assert await worker.run_until_idle() == 1
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
            "alice@example.com",
            "bob@example.com",
        ]


class TestBodyDeadline:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"body_read_timeout_seconds": 0.3})

    async def test_a_body_that_stops_arriving_is_cut_off_with_408(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        never = asyncio.Event()

        response = await asyncio.wait_for(
            client.post(
                "/api/v1/emails",
                headers=raw_headers(sender),
                content=paused(multipart_body(VALID), at=40, until=never),
            ),
            20,
        )

        message = await refused(response, 408)
        assert "did not arrive within 0.3 seconds" in message


class TestAmbiguousDisplayNames:
    """3: a display name with unquoted specials names a mailbox it is not."""

    @pytest.mark.parametrize(
        "address",
        [
            "alice@example.org)<bob@example.org>",
            "alice@example.org <bob@example.org>",
            "bob@example.org, Carol <carol@example.org>",
            "Bob; Eve <eve@example.org>",
            "Bob [admin] <bob@example.org>",
            'Bo"b <bob@example.org>',
            '"Bob" Eve" <bob@example.org>',
        ],
    )
    @pytest.mark.parametrize("field", ["to", "cc", "bcc", "replyTo"])
    async def test_is_refused_naming_the_field(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        refused: Any,
        address: str,
        field: str,
    ) -> None:
        fields = {field: [address]} if field != "to" else {"to": [address]}
        if field != "to":
            fields["to"] = ["alice@example.com"]

        response = await send(client, sender, **fields)

        message = await refused(response, 400)
        assert message.startswith(f"{field}: ambiguous")

    async def test_in_the_sender_is_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        response = await send(client, sender, **{"from": f"x@evil.example <{sender.email}>"})

        assert (await refused(response, 400)).startswith("from: ambiguous")

    async def test_a_quoted_name_with_specials_stays_legal(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await send(client, sender, to=['"Alice, Sales (EU)" <alice@example.com>'])

        assert response.status_code == 202, response.text
        assert response.json()["to"] == ['"Alice, Sales (EU)" <alice@example.com>']
        await worker.run_until_idle()
        [received] = smtp_server.received
        assert received.rcpt_tos == ["alice@example.com"]
        assert received.message()["To"] == '"Alice, Sales (EU)" <alice@example.com>'


class TestTruncatedBody:
    """5: a body that never reaches its closing boundary is not a send."""

    async def test_a_body_cut_mid_attachment_is_a_400(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        whole = multipart_body(VALID, [("report.txt", b"0123456789" * 1001, "text/plain")])
        cut = whole[: len(whole) // 2]

        response = await client.post("/api/v1/emails", headers=raw_headers(sender), content=cut)

        message = await refused(response, 400)
        assert "before its closing boundary" in message


class TestPayloadValues:
    """6: unknown keys named, and millions of values refused before they are built."""

    async def test_an_unknown_key_is_refused_by_name(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        # trackOpen, not issue 18's trackOpens: a misspelt option is refused, not ignored.
        response = await send(client, sender, trackOpen=True)

        assert await refused(response, 400) == "unknown field 'trackOpen'"

    async def test_an_unknown_key_holding_millions_of_objects_is_refused_unparsed(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        padding = b"[" + b"{}," * 3_000_000 + b"{}]"
        payload = json.dumps(VALID).encode()[:-1] + b', "x": ' + padding + b"}"

        response = await client.post(
            "/api/v1/emails", headers=raw_headers(sender), content=multipart_body(payload)
        )

        assert await refused(response, 400) == "payload holds more than 100000 JSON values"

    async def test_per_recipient_variables_for_a_thousand_recipients_are_accepted(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        to = [f"user{i}@example.com" for i in range(1000)]
        fields = {f"field{n}": f"value {n}" for n in range(30)}

        response = await send(
            client,
            sender,
            to=to,
            subject="Hello {{ field0 }}",
            recipientVariables=dict.fromkeys(to, fields),
        )

        assert response.status_code == 202, response.text

    async def test_a_full_send_with_a_long_body_full_of_commas_is_accepted(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await send(
            client,
            sender,
            to=[f"user{i}@example.com" for i in range(1000)],
            cc=[f"cc{i}@example.com" for i in range(50)],
            body="<p>one, two, {three}, [four]</p>" * 20_000,
        )

        assert response.status_code == 202, response.text


class TestMultipartBoundary:
    """7: a boundary python-multipart refuses is a 400, not a 500."""

    async def test_a_boundary_over_256_characters(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        boundary = "b" * 300
        body = multipart_body(VALID).replace(BOUNDARY.encode(), boundary.encode())

        response = await client.post(
            "/api/v1/emails", headers=raw_headers(sender, boundary), content=body
        )

        assert (await refused(response, 400)).startswith("malformed multipart body")


class TestCanonicalAddresses:
    """8: one form for every comparison of two addresses."""

    async def test_a_suppressed_address_is_matched_whatever_the_case(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker,
        worker: Worker,
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post(
            "/api/v1/suppressions", headers=admin, json={"address": "Victim@Example.com"}
        )
        assert added.status_code == 201

        response = await send(client, sender, to=["victim@example.com", "VICTIM@example.COM"])

        assert response.status_code == 422
        body = response.json()
        # One recipient: duplicates are found by the same canonical form.
        assert (body["status"], body["suppressed"]) == (422, ["victim@example.com"])
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        shown = await client.get("/api/v1/suppressions/vIcTiM@example.com", headers=admin)
        assert shown.json()["address"] == "victim@example.com"

    async def test_an_address_suppressed_after_submission_is_not_sent_whatever_the_case(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        accepted = await send(client, sender, to=["Victim@example.com"])
        assert accepted.status_code == 202
        admin = await make_workspace_key(sessionmaker)
        await client.post(
            "/api/v1/suppressions", headers=admin, json={"address": "victim@EXAMPLE.com"}
        )

        await worker.run_until_idle()

        assert smtp_server.received == []
        shown = await client.get(
            f"/api/v1/emails/{accepted.json()['referenceId']}", headers=sender.headers
        )
        assert [r["status"] for r in shown.json()["recipients"]] == ["rejected"]


class TestAttachmentTypes:
    """9: only discrete types; a multipart/* or message/* file goes as octet-stream."""

    @pytest.mark.parametrize(
        ("filename", "content_type"),
        [
            ("forwarded.eml", "message/rfc822"),
            ("parts.bin", "multipart/mixed; boundary=x"),
            ("forwarded.eml", "application/octet-stream"),
            ("partial.txt", "message/partial"),
        ],
    )
    async def test_is_sent_as_octet_stream_in_a_strictly_valid_message(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        filename: str,
        content_type: str,
    ) -> None:
        data = b"From: a@b.example\r\nSubject: x\r\n\r\n--x\r\nnot really\r\n"
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [(filename, data, content_type)]),
        )
        assert response.status_code == 202, response.text
        await worker.run_until_idle()

        [received] = smtp_server.received
        parsed = email.message_from_bytes(received.data, policy=email.policy.strict)
        attachments = list(parsed.iter_attachments())
        assert [a.get_content_type() for a in attachments] == ["application/octet-stream"]
        assert attachments[0].get_content() == data
        assert all(not part.defects for part in parsed.walk())


class TestReservedHeaders:
    """10: trace, authentication-result and part headers are not the caller's to set."""

    @pytest.mark.parametrize(
        "name",
        [
            "Authentication-Results",
            "ARC-Seal",
            "ARC-Message-Signature",
            "arc-authentication-results",
            "Resent-From",
            "Resent-Date",
            "Delivered-To",
            "X-Original-To",
            "Content-ID",
            "Content-Location",
        ],
    )
    async def test_is_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, name: str
    ) -> None:
        response = await send(client, sender, headers={name: "x"})

        assert (await refused(response, 400)).startswith(f"header {name} is set by posthouse")

    async def test_a_callers_list_unsubscribe_stays_allowed(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        value = "<https://yourstore.example/unsubscribe/42>"

        response = await send(client, sender, headers={"List-Unsubscribe": value})

        assert response.status_code == 202, response.text
        await worker.run_until_idle()
        assert smtp_server.received[0].message()["List-Unsubscribe"] == value


class TestLocalPartLength:
    """11: RFC 5321 caps a local part at 64 octets."""

    async def test_65_octets_are_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        response = await send(client, sender, to=["a" * 65 + "@example.com"])

        assert "longer than 64 characters" in await refused(response, 400)

    async def test_64_octets_are_accepted(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await send(client, sender, to=["a" * 64 + "@example.com"])

        assert response.status_code == 202, response.text


class TestIdempotencyKeysPerSender:
    """12: the caller is checked before a replay, and keys are scoped per sender."""

    async def test_another_senders_tokens_never_replay_a_response(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        other = await make_sender(sessionmaker, "billing@yourstore.example")
        key = {"Idempotency-Key": "order-42"}
        first = await client.post(
            "/api/v1/emails", headers={**sender.headers, **key}, **multipart(VALID)
        )
        assert first.status_code == 202

        replayed = await client.post(
            "/api/v1/emails", headers={**other.headers, **key}, **multipart(VALID)
        )

        assert replayed.status_code == 404, replayed.text
        assert replayed.json() == {
            "status": 404,
            "message": "Sender email is not found in platform!",
        }
        assert "Idempotency-Replayed" not in replayed.headers
        # Under its own sender the same key is simply unused: no 409 reveals A's.
        own = await client.post(
            "/api/v1/emails",
            headers={**other.headers, **key},
            **multipart({**VALID, "from": other.email, "to": ["carol@example.com"]}),
        )
        assert own.status_code == 202, own.text
        assert "Idempotency-Replayed" not in own.headers
        assert own.json()["referenceId"] != first.json()["referenceId"]
        assert await worker.run_until_idle() == 2
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
            "alice@example.com",
            "carol@example.com",
        ]


class TestReplySubjects:
    """13: a reply's subject follows the same rules as any other."""

    async def test_a_reply_to_a_998_character_subject_keeps_it_without_re(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        subject = "x" * 998
        original = await send(client, sender, subject=subject)
        assert original.status_code == 202, original.text

        reply = await client.post(
            f"/api/v1/emails/{original.json()['referenceId']}/reply",
            headers=sender.headers,
            **multipart({"body": "<p>Re</p>"}),
        )

        assert reply.status_code == 202, reply.text
        assert reply.json()["subject"] == subject
        shorter = await send(client, sender, subject="y" * 994)
        again = await client.post(
            f"/api/v1/emails/{shorter.json()['referenceId']}/reply",
            headers=sender.headers,
            **multipart({"body": "<p>Re</p>"}),
        )
        assert again.json()["subject"] == "Re: " + "y" * 994

    @pytest.mark.parametrize("subject", ["", "   ", "Re:", "RE: re:"])
    async def test_reply_by_subject_without_a_subject_is_a_400(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, subject: str
    ) -> None:
        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": sender.email, "subject": subject},
            headers=sender.headers,
            **multipart({"body": "<p>Hi</p>"}),
        )

        assert await refused(response, 400) == "subject is required"


class TestErrorShapes:
    """14: every error a client can cause, in the door's shape and bounded in size."""

    async def test_non_utf8_json_on_an_admin_route(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        response = await client.post(
            "/api/v1/suppressions",
            headers={**admin, "Content-Type": "application/json"},
            content=b'{"address": "\xff@example.com"}',
        )

        assert response.status_code == 400
        assert set(response.json()) == {"status", "message"}

    @pytest.mark.parametrize("path", ["/nope", "/api/v1/emails/ema_x/nope", "/api/v2/emails"])
    async def test_an_unknown_path(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)

        assert response.status_code == 404
        assert response.json() == {"status": 404, "message": "Not Found"}

    @pytest.mark.parametrize("path", ["/v1/nope", "/v1/email-downloads"])
    async def test_an_unknown_path_under_a_compatible_door(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)

        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "not found"}}

    async def test_an_unknown_method_under_a_compatible_door(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.delete("/v1/abc/email/send")

        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == "POST"

    async def test_an_unknown_method(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/api/v1/emails")

        assert response.status_code == 405
        assert response.json() == {"status": 405, "message": "Method Not Allowed"}
        assert response.headers["Allow"] == "POST"

    async def test_an_error_about_a_huge_value_does_not_echo_it(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        for fields in (
            {"to": ["x" * 1_000_000 + "@example.com"]},
            {"to": ["alice@" + "x" * 100_000]},
            {"headers": {"X-" + "a" * 100_000: "v"}},
            {"x" * 100_000: 1},
        ):
            response = await send(client, sender, **fields)

            assert len(response.content) < 1200
            await refused(response, 400)


class TestBidirectionalControls:
    """16: names and filenames that display as something they are not."""

    @pytest.mark.parametrize("control", ["\u202e", "\u202d", "\u2066", "\u200f", "\u061c"])
    async def test_in_a_display_name(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any, control: str
    ) -> None:
        response = await send(client, sender, to=[f'"Alice {control}Sales" <alice@example.com>'])

        assert "bidirectional" in await refused(response, 400)

    async def test_in_the_senders_name(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        response = await send(client, sender, **{"from": f"Support\u202e <{sender.email}>"})

        assert "bidirectional" in await refused(response, 400)

    async def test_in_a_filename(
        self, client: httpx.AsyncClient, sender: SenderTokens, refused: Any
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(VALID, [("invoice\u202efdp.txt", b"hello", "text/plain")]),
        )

        assert "bidirectional" in await refused(response, 422)


class TestTemplateNumbers:
    """Found by the schemathesis run of .ci/run once templates (issue 17) landed: a
    version or template number past the database's INTEGER was a 500."""

    async def test_on_the_admin_api(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        added = await client.post(
            "/api/v1/templates",
            headers=admin,
            json={"name": "welcome", "subject": "Hi", "html": "<p>Hi</p>"},
        )
        assert added.status_code == 201, added.text
        url = f"/api/v1/templates/{added.json()['id']}"

        # Past PostgreSQL's INTEGER, and past SQLite's too.
        for huge in (2**40, 10**20):
            for response in (
                await client.get(url, headers=admin, params={"version": huge}),
                await client.get(f"/api/v1/templates/{huge}", headers=admin),
                await client.post(f"{url}/publish", headers=admin, json={"version": huge}),
            ):
                assert response.status_code in (400, 404), response.text
                assert set(response.json()) == {"status", "message"}

    @pytest.mark.parametrize(
        "fields", [{"template": 2**40}, {"template": 1, "templateVersion": 2**40}]
    )
    async def test_in_a_send(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        refused: Any,
        fields: dict[str, int],
    ) -> None:
        response = await send(client, sender, **fields)

        await refused(response, 404)
