"""Seed 002's error answers: its documented bodies byte for byte where it shows them,
its shape and reasons everywhere else, and nothing stored or sent."""

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.repository import AccountRepository
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.delivery.worker import Worker
from posthouse.protections import suppression
from tests.dialects.everlytic.conftest import (
    URL,
    Account,
    basic,
    mail,
    make_account,
)
from tests.helpers import NOTHING_STORED, stored_rows
from tests.protections.support import set_workspace
from tests.smtp_server import SmtpServer

# The document's bodies, as it prints them.
LOGIN_REQUIRED = """{
    "code": 401,
    "message": "Login Required",
    "error": {
        "errors": [
            {
                "domain": "global",
                "reason": "required",
                "message": "Login Required",
                "locationType": "request",
                "location": "authorization"
            }
        ]
    }
}"""
UNVERIFIED_DOMAIN = """{
    "code": 400,
    "message": "Send Failed - Unable to send: Unverified Domain - fakedomain.com",
    "error": {
        "errors": [
            {
                "domain": "global",
                "reason": "invalid",
                "message": "Send Failed - Unable to send: Unverified Domain - fakedomain.com",
                "locationType": "request",
                "location": "default"
            }
        ]
    }
}"""
FROM_EMAIL_INVALID = """{
    "code": 412,
    "message": {
        "errors": {
            "headers.from.email": [
                "The headers.from.email format is invalid."
            ]
        }
    },
    "error": {
        "errors": [
            {
                "domain": "global",
                "reason": "invalidParameter",
                "message": {
                    "errors": {
                        "headers.from.email": [
                            "The headers.from.email format is invalid."
                        ]
                    }
                },
                "locationType": "request",
                "location": "sendValidation"
            }
        ]
    }
}"""


def compact(document_text: str) -> bytes:
    """The document's pretty-printed body as the api writes it (no spaces)."""
    return json.dumps(json.loads(document_text), separators=(",", ":")).encode()


Check = Callable[[], Awaitable[None]]


@pytest.fixture
def nothing_happened(
    sessionmaker: async_sessionmaker[AsyncSession], worker: Worker, smtp_server: SmtpServer
) -> Check:
    async def check() -> None:
        assert await stored_rows(sessionmaker) == NOTHING_STORED
        assert await worker.run_until_idle() == 0
        assert smtp_server.received == []

    return check


def reason(response: httpx.Response) -> str:
    return str(response.json()["error"]["errors"][0]["reason"])


class TestCredentials:
    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "Bearer phk_x.y",
            "Basic !!!",
            "Basic " + base64.b64encode(b"acme").decode(),
            "Basic " + base64.b64encode(b"acme:").decode(),
            basic("acme", "phk_unknown.secret"),
        ],
        ids=["none", "bearer", "not-base64", "no-colon", "no-password", "unknown-key"],
    )
    async def test_missing_or_wrong_credentials_get_the_documented_401(
        self,
        client: httpx.AsyncClient,
        account: Account,
        nothing_happened: Check,
        authorization: str | None,
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}

        response = await client.post(URL, json=mail(), headers=headers)

        assert response.status_code == 401
        assert response.content == compact(LOGIN_REQUIRED)
        await nothing_happened()

    async def test_a_key_under_another_workspaces_name_gets_the_same_401(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
        nothing_happened: Check,
    ) -> None:
        other = await make_account(sessionmaker, "globex", "mail@globex.example")

        wrong_name = await client.post(URL, json=mail(), auth=("globex", account.key))
        wrong_case = await client.post(URL, json=mail(), auth=("ACME", account.key))
        others_key = await client.post(URL, json=mail(), auth=("acme", other.key))

        for response in (wrong_name, wrong_case, others_key):
            assert response.status_code == 401
            assert response.content == compact(LOGIN_REQUIRED)
        await nothing_happened()

    async def test_a_key_without_the_send_scope_is_forbidden_access(
        self,
        client: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        nothing_happened: Check,
    ) -> None:
        viewer = await make_account(sessionmaker, scopes="channel.view")

        response = await client.post(URL, json=mail(), auth=viewer.auth)

        assert response.status_code == 401
        assert response.json()["error"]["errors"][0] == {
            "domain": "global",
            "reason": "ForbiddenAccess",
            "message": "Forbidden Access",
            "locationType": "request",
            "location": "authorization",
        }
        await nothing_happened()

    async def test_a_from_of_another_workspace_cannot_send(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
        nothing_happened: Check,
    ) -> None:
        await make_account(sessionmaker, "globex", "mail@globex.example")
        payload = mail()
        payload["headers"]["from"] = {"email": "mail@globex.example"}  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 400
        assert response.json()["message"] == (
            "Send Failed - Unable to send: Unverified Domain - globex.example"
        )
        await nothing_happened()


class TestDocumentedBodies:
    async def test_an_unknown_sending_domain_gets_the_documents_400(
        self, client: httpx.AsyncClient, account: Account, nothing_happened: Check
    ) -> None:
        payload = mail()
        payload["headers"]["from"] = {"email": "boss@fakedomain.com"}  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 400
        assert response.content == compact(UNVERIFIED_DOMAIN)
        await nothing_happened()

    async def test_an_invalid_from_email_gets_the_documents_412(
        self, client: httpx.AsyncClient, account: Account, nothing_happened: Check
    ) -> None:
        payload = mail()
        payload["headers"]["from"] = {"email": "not an address"}  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 412
        assert response.content == compact(FROM_EMAIL_INVALID)
        await nothing_happened()

    async def test_a_registered_but_unverified_domain_is_reason_unverified_domain(
        self,
        settings: Settings,
        account: Account,
        nothing_happened: Check,
    ) -> None:
        from posthouse.app import create_app

        strict = create_app(settings.model_copy(update={"require_verified_domains": True}))
        async with strict.router.lifespan_context(strict):
            transport = httpx.ASGITransport(app=strict)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.post(URL, json=mail(), auth=account.auth)

        assert response.status_code == 400
        assert response.json()["error"]["errors"][0] == {
            "domain": "global",
            "reason": "UnverifiedDomain",
            "message": "Send Failed - Unable to send: Unverified Domain - yourstore.example",
            "locationType": "request",
            "location": "default",
        }
        await nothing_happened()


class TestFieldErrors:
    @pytest.mark.parametrize(
        ("change", "field", "sentence"),
        [
            (
                lambda m: m["headers"].pop("subject"),
                "headers.subject",
                "The headers.subject field is required.",
            ),
            (
                lambda m: m["headers"].pop("from"),
                "headers.from.email",
                "The headers.from.email field is required.",
            ),
            (
                lambda m: m["headers"].pop("to"),
                "headers.to",
                "The headers.to field is required.",
            ),
            (
                lambda m: m["headers"]["to"][0].pop("email"),
                "headers.to.0.email",
                "The headers.to.0.email field is required.",
            ),
            (lambda m: m.pop("body"), "body.html", "The body.html field is required."),
            (
                lambda m: m["headers"].update(subject=7),
                "headers.subject",
                "The headers.subject must be a string.",
            ),
            (
                lambda m: m.update(options={"track_opens": "maybe"}),
                "options.track_opens",
                "The options.track_opens field must be true or false.",
            ),
            (
                lambda m: m["headers"].update(to={"email": "a@example.com"}),
                "headers.to",
                "The headers.to must be an array.",
            ),
            (
                lambda m: m["headers"].update(cc=[{"email": "bad@"}]),
                "headers.cc",
                "The headers.cc format is invalid.",
            ),
            (
                lambda m: m.update(options={"unsubscribe_redirect_url": "javascript:alert(1)"}),
                "options.unsubscribe_redirect_url",
                "The options.unsubscribe_redirect_url is invalid: "
                "options.unsubscribe_redirect_url must be an absolute http or https URL.",
            ),
            (
                lambda m: m.update(attachments={"data": [{"filename": "a.txt", "data": "%%"}]}),
                "attachments.data.0.data",
                "The attachments.data.0.data must be a valid base64 string.",
            ),
            (
                lambda m: m.update(attachments={"data": [{"data": "aGk="}]}),
                "attachments.data.0.filename",
                "The attachments.data.0.filename field is required.",
            ),
            (
                lambda m: m.update(options={"template_id": "tpl_nothing"}),
                "options.template_id",
                "The selected options.template_id is invalid.",
            ),
        ],
        ids=[
            "no-subject",
            "no-from",
            "no-to",
            "to-without-email",
            "no-body",
            "subject-number",
            "track-opens-text",
            "to-object",
            "cc-invalid",
            "redirect-not-web",
            "attachment-not-base64",
            "attachment-no-filename",
            "unknown-template",
        ],
    )
    async def test_a_wrong_field_is_the_412_form_naming_it(
        self,
        client: httpx.AsyncClient,
        account: Account,
        nothing_happened: Check,
        change: Callable[[dict[str, Any]], object],
        field: str,
        sentence: str,
    ) -> None:
        payload = mail()
        change(payload)

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 412, response.text
        body = response.json()
        assert body["code"] == 412
        assert body["message"] == {"errors": {field: [sentence]}}
        [error] = body["error"]["errors"]
        assert error["message"] == body["message"]
        assert error["reason"] == "invalidParameter"
        await nothing_happened()

    async def test_a_malformed_idempotency_key_is_a_412_naming_the_header(
        self, client: httpx.AsyncClient, account: Account, nothing_happened: Check
    ) -> None:
        response = await client.post(
            URL, json=mail(), auth=account.auth, headers={"Idempotency-Key": "x" * 300}
        )

        assert response.status_code == 412
        assert response.json()["message"] == {
            "errors": {
                "Idempotency-Key": [
                    "The Idempotency-Key is invalid: "
                    "Idempotency-Key must be 1 to 256 visible ASCII characters."
                ]
            }
        }
        await nothing_happened()

    async def test_a_file_path_is_refused_naming_the_field(
        self, client: httpx.AsyncClient, account: Account, nothing_happened: Check
    ) -> None:
        payload = mail(attachments={"data": [{"filename": "passwd", "path": "/etc/passwd"}]})

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 412
        [(field, [sentence])] = response.json()["message"]["errors"].items()
        assert field == "attachments.data.0.path"
        assert sentence.startswith("The attachments.data.0.path field is not supported")
        await nothing_happened()

    @pytest.mark.parametrize(
        "custom",
        [{"Reply": "x"}, {"X-Evil": "a\r\nBcc: victim@example.com"}, {"X-List": ["a", 1]}],
        ids=["not-x", "crlf", "not-strings"],
    )
    async def test_bad_custom_headers_are_reason_custom_headers(
        self,
        client: httpx.AsyncClient,
        account: Account,
        nothing_happened: Check,
        custom: dict[str, object],
    ) -> None:
        payload = mail()
        payload["headers"]["custom_headers"] = custom  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 412, response.text
        assert list(response.json()["message"]["errors"])[0].startswith("headers.custom_headers")
        assert reason(response) == "CustomHeaders"
        await nothing_happened()


class TestSendRefusals:
    async def test_every_recipient_suppressed_is_reason_suppressed(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
        nothing_happened: Check,
    ) -> None:
        async with sessionmaker.begin() as session:
            workspace = await AccountRepository(session).workspace_by_name("acme")
            assert workspace is not None
            await suppression.add(session, workspace_id=workspace.id, address="alice@example.com")

        response = await client.post(URL, json=mail(), auth=account.auth)

        assert response.status_code == 400
        assert response.json()["error"]["errors"][0] == {
            "domain": "global",
            "reason": "Suppressed",
            "message": "Send Failed - Unable to send: Suppressed - alice@example.com",
            "locationType": "request",
            "location": "suppressionValidation",
        }
        await nothing_happened()

    async def test_a_suppressed_cc_is_left_out_of_the_transactions(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        async with sessionmaker.begin() as session:
            workspace = await AccountRepository(session).workspace_by_name("acme")
            assert workspace is not None
            await suppression.add(session, workspace_id=workspace.id, address="cc@example.com")
        payload = mail()
        payload["headers"]["cc"] = [{"email": "cc@example.com"}]  # type: ignore[index]

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 200, response.text
        assert len(response.json()["transactions"]) == 1

    async def test_over_the_monthly_quota_is_no_quota(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=1)
        first = await client.post(URL, json=mail(), auth=account.auth)

        second = await client.post(URL, json=mail(), auth=account.auth)

        assert first.status_code == 200, first.text
        assert second.status_code == 400
        assert second.json()["error"]["errors"][0] == {
            "domain": "NoQuota",
            "reason": "NoQuota",
            "message": "Send Failed - Unable to send: No Quota",
            "locationType": "request",
            "location": "sendValidation",
        }
        assert (await stored_rows(sessionmaker))["message"] == 1

    async def test_a_suspended_workspace_is_forbidden_access(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
        nothing_happened: Check,
    ) -> None:
        await set_workspace(
            sessionmaker, suspended_at=utcnow(), suspension_reason="high bounce rate"
        )

        response = await client.post(URL, json=mail(), auth=account.auth)

        assert response.status_code == 400
        assert response.json()["message"] == (
            "Send Failed - Unable to send: Account suspended - high bounce rate"
        )
        assert reason(response) == "ForbiddenAccess"
        await nothing_happened()

    async def test_a_forbidden_attachment_type_is_reason_attachment(
        self, client: httpx.AsyncClient, account: Account, nothing_happened: Check
    ) -> None:
        payload = mail(attachments={"data": [{"filename": "run.exe", "data": "TVo="}]})

        response = await client.post(URL, json=payload, auth=account.auth)

        assert response.status_code == 400
        assert reason(response) == "Attachment"
        assert response.json()["message"].startswith("Send Failed - Unable to send: ")
        await nothing_happened()


class TestOutsideTheRoute:
    async def test_unknown_paths_and_methods_answer_in_the_doors_shape(
        self, client: httpx.AsyncClient, account: Account
    ) -> None:
        unknown = await client.post("/transactional/email/v1/mails", json=mail())
        method = await client.get(URL, auth=account.auth)

        assert unknown.status_code == 404
        assert unknown.json()["message"] == "Not Found"
        assert method.status_code == 405
        assert method.headers["Allow"] == "POST"
        assert set(method.json()) == {"code", "message", "error"}

    async def test_the_operation_is_in_the_openapi_document_with_its_schemas(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        document = (await client.get("/openapi.json")).json()
        operation = document["paths"][URL]["post"]

        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["properties"]) == {"body", "headers", "options", "attachments"}
        assert "$ref" not in json.dumps(body)
        assert set(operation["responses"]) >= {"200", "400", "401", "412"}
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/MailAccepted"}


class TestRateLimits:
    async def test_over_the_limit_is_request_limit_with_rate_limit_headers(
        self, settings: Settings, account: Account
    ) -> None:
        from posthouse.app import create_app

        limited = settings.model_copy(update={"rate_limit_per_key": 0.1, "rate_limit_burst": 10.0})
        application = create_app(limited)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                responses = [await http.post(URL, json=mail(), auth=account.auth) for _ in range(2)]

        assert [r.status_code for r in responses] == [200, 429]
        assert [r.headers["RateLimit-Limit"] for r in responses] == ["1", "1"]
        assert int(responses[1].headers["Retry-After"]) >= 1
        assert responses[1].json()["error"]["errors"][0]["domain"] == "usageLimit"
        assert reason(responses[1]) == "RequestLimit"
