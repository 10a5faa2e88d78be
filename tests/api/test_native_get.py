"""GET /api/v1/emails/{referenceId}, /healthz and the OpenAPI documents."""

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_sender, multipart
from tests.helpers import settle
from tests.smtp_server import SmtpServer, free_port

PAYLOAD = {
    "from": "Your Store <no-reply@yourstore.example>",
    "to": ["alice@example.com", "bob@example.com"],
    "bcc": ["audit@example.com"],
    "subject": "Your invoice",
    "body": "<p>Attached.</p>",
}


async def send(client: httpx.AsyncClient, sender: SenderTokens) -> str:
    response = await client.post(
        "/api/v1/emails",
        headers=sender.headers,
        **multipart(PAYLOAD, [("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")]),
    )
    assert response.status_code == 202, response.text
    return str(response.json()["referenceId"])


def by_email(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["email"]: r for r in detail["recipients"]}


class TestGetEmail:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # A deferred delivery stays deferred while the first snapshot is taken.
        return settings.model_copy(update={"retry_base_seconds": 0.3, "retry_max_seconds": 0.6})

    async def test_a_queued_email_as_accepted(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        reference = await send(client, sender)

        response = await client.get(f"/api/v1/emails/{reference}", headers=sender.headers)

        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["referenceId"] == reference
        assert detail["originalReferenceId"] is None
        assert detail["from"] == PAYLOAD["from"]
        assert (detail["to"], detail["cc"], detail["bcc"]) == (
            PAYLOAD["to"],
            [],
            ["audit@example.com"],
        )
        assert (detail["subject"], detail["body"]) == (PAYLOAD["subject"], PAYLOAD["body"])
        assert detail["messageId"].endswith("@yourstore.example>")
        assert datetime.fromisoformat(detail["createdAt"]).tzinfo is not None
        assert detail["attachments"] == [
            {"filename": "invoice.pdf", "contentType": "application/pdf", "size": 16}
        ]
        assert {
            email: (r["type"], r["status"], r["attempts"], r["lastSmtpCode"])
            for email, r in by_email(detail).items()
        } == {
            "alice@example.com": ("to", "queued", 0, None),
            "audit@example.com": ("bcc", "queued", 0, None),
            "bob@example.com": ("to", "queued", 0, None),
        }

    async def test_per_recipient_status_attempts_and_last_smtp_reply(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        reference = await send(client, sender)
        # RCPT order follows the queue: alice, bob, audit (one connection, one at a time).
        smtp_server.handler.rcpt_replies.extend(
            ["451 4.2.1 Mailbox busy, try later", "550 5.1.1 No such user"]
        )

        await worker.run_until_idle()
        first = by_email(
            (await client.get(f"/api/v1/emails/{reference}", headers=sender.headers)).json()
        )
        await settle(worker, sessionmaker)
        final = by_email(
            (await client.get(f"/api/v1/emails/{reference}", headers=sender.headers)).json()
        )

        statuses = sorted((r["status"], r["lastSmtpCode"]) for r in first.values())
        assert statuses == [("bounced", 550), ("deferred", 451), ("sent", 250)]
        deferred = next(r for r in first.values() if r["status"] == "deferred")
        assert deferred["lastSmtpReply"] == "4.2.1 Mailbox busy, try later"
        assert deferred["nextAttemptAt"] is not None
        email = deferred["email"]
        assert (final[email]["status"], final[email]["attempts"]) == ("sent", 2)
        assert final[email]["sentAt"] is not None
        assert final[email]["nextAttemptAt"] is None
        bounced = next(r for r in final.values() if r["status"] == "bounced")
        assert (bounced["attempts"], bounced["lastSmtpReply"]) == (1, "5.1.1 No such user")
        assert len(smtp_server.received) == 2

    async def test_another_workspaces_email_looks_exactly_like_a_missing_one(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        reference = await send(client, sender)
        intruder = await make_sender(sessionmaker, "no-reply@evil.example", workspace="evil")
        missing = "ema_01KAAAAAAAAAAAAAAAAAAAAAAA"

        foreign = await client.get(f"/api/v1/emails/{reference}", headers=intruder.headers)
        absent = await client.get(f"/api/v1/emails/{missing}", headers=intruder.headers)

        assert (foreign.status_code, foreign.json()) == (
            404,
            {"status": 404, "message": f"No API e-mail found for referenceId {reference}"},
        )
        assert (absent.status_code, absent.json()) == (
            404,
            {"status": 404, "message": f"No API e-mail found for referenceId {missing}"},
        )

    async def test_unknown_tokens_get_404(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        reference = await send(client, sender)

        response = await client.get(
            f"/api/v1/emails/{reference}",
            headers={"X-Api-Access-Token": sender.access_token, "X-Api-Secret-Token": "phs_no"},
        )

        assert (response.status_code, response.json()) == (
            404,
            {"status": 404, "message": "Sender email is not found in platform!"},
        )


class TestHealth:
    async def test_healthy_when_the_database_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")

        assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})

    async def test_unavailable_when_the_database_does_not_answer(self, settings: Settings) -> None:
        dead = f"postgresql://postgres@127.0.0.1:{free_port()}/posthouse"
        app = create_app(settings.model_copy(update={"database_url": dead}))

        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.get("/healthz")

        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}


class TestOpenApi:
    async def test_every_endpoint_and_its_errors_are_documented(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()

        paths = spec["paths"]
        operations = {
            ("post", "/api/v1/emails"),
            ("post", "/api/v1/emails/reply"),
            ("post", "/api/v1/emails/{referenceId}/reply"),
            ("get", "/api/v1/emails/{referenceId}"),
            ("get", "/healthz"),
        }
        assert operations <= {(m, p) for p, item in paths.items() for m in item}
        for method, path in operations - {("get", "/healthz")}:
            operation = paths[path][method]
            assert operation["description"], (method, path)
            assert {"400", "404"} <= set(operation["responses"]), (method, path)
            error = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert {"X-Api-Access-Token", "X-Api-Secret-Token"} <= headers
            if method == "post":
                assert "Idempotency-Key" in headers, path
        send = paths["/api/v1/emails"]["post"]
        form = send["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["payload"]
        assert {"from", "to", "cc", "bcc", "replyTo", "subject", "body"} <= set(
            form["properties"]["payload"]["properties"]
        )
        assert form["properties"]["attachments"]["items"]["format"] == "binary"
        assert "202" in send["responses"]
        reply = paths["/api/v1/emails/reply"]["post"]
        assert {"from", "subject"} <= {p["name"] for p in reply["parameters"]}
        assert "originalReferenceId" in spec["components"]["schemas"]["ReplyAccepted"]["properties"]
        assert set(spec["components"]["schemas"]["ErrorBody"]["properties"]) == {
            "status",
            "message",
        }

    async def test_the_docs_page_is_served(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/docs")

        assert response.status_code == 200
        assert "/openapi.json" in response.text
