"""The reply endpoints: by referenceId and by subject, threaded as the SMTP server sees it."""

import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, make_sender, multipart
from tests.helpers import NOTHING_STORED, stored_rows
from tests.smtp_server import SmtpServer

REFERENCE_ID = re.compile(r"^ema_[0-9A-HJKMNP-TV-Z]{26}$")
ORIGINAL = {
    "from": "Your Store <no-reply@yourstore.example>",
    "to": ["customer@example.com"],
    "subject": "Order Update",
    "body": "<p>Your order shipped.</p>",
}
REPLY = {"body": "<p>Your refund has been processed.</p>"}


async def send(client: httpx.AsyncClient, sender: SenderTokens, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart({**ORIGINAL, **fields})
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def delivered(worker: Worker, smtp_server: SmtpServer, recipient: str) -> Any:
    """The last message the SMTP server received for ``recipient``."""
    await worker.run_until_idle()
    matching = [r for r in smtp_server.received if r.rcpt_tos == [recipient]]
    assert matching, f"nothing received for {recipient}"
    return matching[-1].message()


class TestReplyByReference:
    async def test_the_202_body_is_exactly_the_documented_one(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        original = await send(client, sender)

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert REFERENCE_ID.match(body.pop("referenceId"))
        assert body == {
            "originalReferenceId": original["referenceId"],
            "from": "Your Store <no-reply@yourstore.example>",
            "to": ["Your Store <no-reply@yourstore.example>"],
            "subject": "Re: Order Update",
            "body": REPLY["body"],
        }

    async def test_the_reply_threads_under_the_message_id_the_server_received(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        original = await send(client, sender)
        first = await delivered(worker, smtp_server, "customer@example.com")

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart({**REPLY, "to": ["customer@example.com"]}),
        )

        assert response.status_code == 202, response.text
        reply = await delivered(worker, smtp_server, "customer@example.com")
        assert reply["In-Reply-To"] == first["Message-ID"]
        assert reply["References"] == first["Message-ID"]
        assert reply["Message-ID"] != first["Message-ID"]
        assert reply["Subject"] == "Re: Order Update"

    async def test_to_defaults_to_the_original_sender(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        original = await send(client, sender)

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 202, response.text
        message = await delivered(worker, smtp_server, "no-reply@yourstore.example")
        assert message["To"].addresses[0].addr_spec == "no-reply@yourstore.example"

    async def test_a_reply_to_a_reply_keeps_one_re_prefix_and_the_whole_thread(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        original = await send(client, sender, subject="RE: Re:  Order Update")
        first = await delivered(worker, smtp_server, "customer@example.com")
        to_customer = {**REPLY, "to": ["customer@example.com"]}
        reply = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart(to_customer),
        )
        second = await delivered(worker, smtp_server, "customer@example.com")

        response = await client.post(
            f"/api/v1/emails/{reply.json()['referenceId']}/reply",
            headers=sender.headers,
            **multipart(to_customer),
        )

        assert reply.json()["subject"] == "Re: Order Update"
        assert response.json()["subject"] == "Re: Order Update"
        assert response.json()["originalReferenceId"] == reply.json()["referenceId"]
        third = await delivered(worker, smtp_server, "customer@example.com")
        assert third["Subject"] == "Re: Order Update"
        assert third["In-Reply-To"] == second["Message-ID"]
        assert third["References"].split() == [first["Message-ID"], second["Message-ID"]]

    async def test_cc_and_attachments_of_a_reply_are_delivered(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        original = await send(client, sender)

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart(
                {**REPLY, "to": ["customer@example.com"], "cc": ["manager@example.com"]},
                [("refund.pdf", b"%PDF-1.4 refund", "application/pdf")],
            ),
        )

        assert response.status_code == 202, response.text
        assert response.json()["cc"] == ["manager@example.com"]
        message = await delivered(worker, smtp_server, "manager@example.com")
        assert [a.get_filename() for a in message.iter_attachments()] == ["refund.pdf"]

    async def test_an_unknown_reference_gets_the_documented_404(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        missing = "ema_01JABCDEF1234XYZ0000000000"[:30]

        for reference in (missing, "ema_01KAAAAAAAAAAAAAAAAAAAAAAA", "not-a-reference"):
            response = await client.post(
                f"/api/v1/emails/{reference}/reply", headers=sender.headers, **multipart(REPLY)
            )

            assert (response.status_code, response.json()) == (
                404,
                {"status": 404, "message": f"No API e-mail found for referenceId {reference}"},
            )
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_another_workspaces_email_looks_exactly_like_a_missing_one(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        theirs = await send(client, sender)
        intruder = await make_sender(sessionmaker, "no-reply@evil.example", workspace="evil")
        missing = "ema_01KAAAAAAAAAAAAAAAAAAAAAAA"

        foreign = await client.post(
            f"/api/v1/emails/{theirs['referenceId']}/reply",
            headers=intruder.headers,
            **multipart(REPLY),
        )
        absent = await client.post(
            f"/api/v1/emails/{missing}/reply", headers=intruder.headers, **multipart(REPLY)
        )

        assert foreign.status_code == absent.status_code == 404
        assert foreign.json()["message"].replace(theirs["referenceId"], "X") == absent.json()[
            "message"
        ].replace(missing, "X")
        assert await stored_rows(sessionmaker) == {"message": 1, "attachment": 0, "delivery": 1}

    async def test_another_sender_of_the_same_workspace_cannot_reply(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        original = await send(client, sender)
        colleague = await make_sender(sessionmaker, "billing@yourstore.example")

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=colleague.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 404
        assert response.json()["message"].startswith("No API e-mail found for referenceId")

    async def test_a_reply_without_a_body_is_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        original = await send(client, sender)

        response = await client.post(
            f"/api/v1/emails/{original['referenceId']}/reply",
            headers=sender.headers,
            **multipart({"to": ["customer@example.com"]}),
        )

        assert response.status_code == 400
        assert response.json() == {"status": 400, "message": "body is required"}
        assert (await stored_rows(sessionmaker))["message"] == 1


class TestReplyBySubject:
    async def test_the_most_recent_match_is_the_original_and_re_prefixes_are_ignored(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        await send(client, sender, subject="Order Update", to=["old@example.com"])
        latest = await send(client, sender, subject="RE: order update", to=["new@example.com"])
        await send(client, sender, subject="Order Updated", to=["other@example.com"])
        latest_message = await delivered(worker, smtp_server, "new@example.com")

        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "no-reply@yourstore.example", "subject": "Re: Order Update"},
            headers=sender.headers,
            **multipart({**REPLY, "to": ["customer@example.com"]}),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["originalReferenceId"] == latest["referenceId"]
        assert body["subject"] == "Re: order update"
        reply = await delivered(worker, smtp_server, "customer@example.com")
        assert reply["In-Reply-To"] == latest_message["Message-ID"]
        assert reply["References"] == latest_message["Message-ID"]

    async def test_without_a_match_a_new_thread_starts(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "no-reply@yourstore.example", "subject": "Order Update"},
            headers=sender.headers,
            **multipart({"body": "<p>Here's the latest on your order.</p>"}),
        )

        assert response.status_code == 202, response.text
        body = response.json()
        assert REFERENCE_ID.match(body.pop("referenceId"))
        assert body == {
            "originalReferenceId": None,
            "from": "no-reply@yourstore.example",
            "to": ["no-reply@yourstore.example"],
            "subject": "Re: Order Update",
            "body": "<p>Here's the latest on your order.</p>",
        }
        message = await delivered(worker, smtp_server, "no-reply@yourstore.example")
        assert "In-Reply-To" not in message
        assert "References" not in message
        assert message["Subject"] == "Re: Order Update"

    async def test_another_senders_emails_are_never_matched(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        await send(client, sender)
        colleague = await make_sender(sessionmaker, "billing@yourstore.example")

        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "billing@yourstore.example", "subject": "Order Update"},
            headers=colleague.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 202, response.text
        assert response.json()["originalReferenceId"] is None

    async def test_a_from_that_is_not_the_tokens_sender_gets_the_documented_404(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        await make_sender(sessionmaker, "billing@yourstore.example")

        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "billing@yourstore.example", "subject": "Order Update"},
            headers=sender.headers,
            **multipart(REPLY),
        )

        assert (response.status_code, response.json()) == (
            404,
            {"status": 404, "message": "Sender email not registered"},
        )
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_unknown_tokens_get_404(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker
    ) -> None:
        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "no-reply@yourstore.example", "subject": "Order Update"},
            headers={"X-Api-Access-Token": "pha_x", "X-Api-Secret-Token": "phs_x"},
            **multipart(REPLY),
        )

        assert response.status_code == 404
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_the_from_may_be_written_with_a_display_name_or_other_case(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "Store <no-reply@YourStore.example>", "subject": "Order Update"},
            headers=sender.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 202, response.text
        assert response.json()["to"] == ["Store <no-reply@yourstore.example>"]

    async def test_missing_query_parameters_are_a_400(
        self, client: httpx.AsyncClient, sender: SenderTokens, sessionmaker: async_sessionmaker
    ) -> None:
        response = await client.post(
            "/api/v1/emails/reply",
            params={"from": "no-reply@yourstore.example"},
            headers=sender.headers,
            **multipart(REPLY),
        )

        assert response.status_code == 400
        assert response.json()["status"] == 400
        assert "subject" in response.json()["message"]
        assert await stored_rows(sessionmaker) == NOTHING_STORED
