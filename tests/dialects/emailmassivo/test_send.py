"""Seed 001: POST /api/v1/external-mails/send and /send-by-template, their answers and
what reaches the SMTP server."""

import base64
import uuid

import httpx
import pytest

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from posthouse.protections import suppression
from posthouse.protections.suppression import SuppressionReason
from tests.conftest import SenderTokens, multipart
from tests.dialects.emailmassivo.conftest import (
    SEND,
    SEND_BY_TEMPLATE,
    Account,
    Sessionmaker,
    add_template,
    error_of,
    mail,
)
from tests.helpers import NOTHING_STORED, deliveries, settle, stored_rows
from tests.smtp_server import SmtpServer


async def test_a_send_is_200_with_the_uuid_of_the_mail_and_arrives(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    response = await client.post(
        SEND,
        headers=account.headers,
        json=mail(previewTitle="Your order is on its way", text=""),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["uuid", "warning"]
    assert "idempotencyKey" in body["warning"]
    [delivery] = await deliveries(sessionmaker)
    assert body["uuid"] == str(delivery.id)
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["alice@example.org"]
    message = received.message()
    assert message["From"] == "Your Store <no-reply@yourstore.example>"
    assert message["To"] == "Alice <alice@example.org>"
    assert message["Subject"] == "Welcome"
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None
    assert text is not None
    assert "Your order is on its way" in html.get_content()  # the preheader
    assert "Hello Alice" in text.get_content()  # generated from the html


async def test_cc_and_bcc_strings_each_get_a_uuid_or_an_error(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    response = await client.post(
        SEND,
        headers=account.headers,
        json=mail(cc='bob@example.org, "Doe, Carol" <carol@example.org>', bcc="not-an-address"),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    ids = {str(d.id): d for d in await deliveries(sessionmaker)}
    assert body["additionalRecipients"][0]["email"] == "bob@example.org"
    assert ids[body["additionalRecipients"][0]["uuid"]].recipient == "bob@example.org"
    assert ids[body["additionalRecipients"][0]["uuid"]].kind == "cc"
    assert body["additionalRecipients"][1]["email"] == "carol@example.org"
    assert ids[body["additionalRecipients"][1]["uuid"]].recipient == "carol@example.org"
    assert body["additionalRecipients"][2] == {
        "email": "not-an-address",
        "error": "Invalid email address",
    }
    assert len(ids) == 3
    await settle(worker, sessionmaker)
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    message = smtp_server.received[0].message()
    assert message["Cc"] == 'bob@example.org, "Doe, Carol" <carol@example.org>'


async def test_the_same_request_within_an_hour_returns_the_same_uuid_and_sends_once(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    attachments = [{"invoice.pdf": base64.b64encode(b"%PDF-1.4 invoice").decode()}]
    first = await client.post(
        SEND, headers=account.headers, json=mail(cc="bob@example.org", attachments=attachments)
    )
    again = await client.post(
        SEND, headers=account.headers, json=mail(cc="bob@example.org", attachments=attachments)
    )
    other_subject = await client.post(
        SEND,
        headers=account.headers,
        json=mail(cc="bob@example.org", attachments=attachments, subject="Welcome!"),
    )

    assert first.status_code == again.status_code == other_subject.status_code == 200
    assert again.json() == first.json()
    assert other_subject.json()["uuid"] != first.json()["uuid"]
    assert (await stored_rows(sessionmaker))["message"] == 2
    await settle(worker, sessionmaker)
    assert len(smtp_server.received) == 4


async def test_an_idempotency_key_replays_only_the_same_request(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    first = await client.post(
        SEND, headers=account.headers, json={**mail(), "idempotencyKey": "order-1"}
    )
    again = await client.post(
        SEND, headers=account.headers, json={**mail(), "idempotencyKey": "order-1"}
    )
    other_key = await client.post(
        SEND, headers=account.headers, json={**mail(), "idempotencyKey": "order-2"}
    )
    other_mail = await client.post(
        SEND,
        headers=account.headers,
        json={**mail(subject="Another"), "idempotencyKey": "order-1"},
    )

    assert first.status_code == 200, first.text
    assert list(first.json()) == ["uuid"]  # no warning with a key
    assert again.json() == first.json()
    assert other_key.status_code == other_mail.status_code == 200
    assert len({first.json()["uuid"], other_key.json()["uuid"], other_mail.json()["uuid"]}) == 3
    assert (await stored_rows(sessionmaker))["message"] == 3


async def test_the_documents_own_headers_are_the_services_and_others_are_sent(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    response = await client.post(
        SEND,
        headers=account.headers,
        json=mail(
            headers={
                "X-Campaign": "spring",
                "Precedence": "list",
                "Feedback-ID": "mine",
                "Return-Path": "<bounce@evil.example>",
            }
        ),
    )

    assert response.status_code == 200, response.text
    await settle(worker, sessionmaker)
    message = smtp_server.received[0].message()
    assert message["X-Campaign"] == "spring"
    assert message["Precedence"] is None
    assert message["Feedback-ID"] is None
    assert "evil" not in smtp_server.received[0].mail_from


async def test_send_by_template_renders_params(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    number = await add_template(sessionmaker, account)
    body = mail(idTemplateMailUser=number, params={"test": "A-1", "test1": "Ada", "test2": "today"})
    del body["mail"]["html"], body["mail"]["subject"]

    response = await client.post(SEND_BY_TEMPLATE, headers=account.headers, json=body)

    assert response.status_code == 200, response.text
    await settle(worker, sessionmaker)
    message = smtp_server.received[0].message()
    assert message["Subject"] == "Order A-1"
    html = message.get_body(("html",))
    assert html is not None
    assert "Hello Ada, your order A-1 ships today." in html.get_content()


async def test_an_unknown_template_is_404(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    body = mail(idTemplateMailUser=4242, params={})
    del body["mail"]["html"]

    response = await client.post(SEND_BY_TEMPLATE, headers=account.headers, json=body)

    assert error_of(response, 404) == "TemplateMailUser not found by id"
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_a_template_that_does_not_compile_is_400(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    number = await add_template(sessionmaker, account, html="<p>{{ test }}</p>")
    body = mail(idTemplateMailUser=number, params={"test": "x"}, subject="{{ broken")
    del body["mail"]["html"]

    response = await client.post(SEND_BY_TEMPLATE, headers=account.headers, json=body)

    assert error_of(response, 400) == "HTML template is not valid"
    assert await stored_rows(sessionmaker) == NOTHING_STORED


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (SuppressionReason.UNSUBSCRIBE, "Email receiver unsubscribed from this API key mails"),
        (SuppressionReason.COMPLAINT, "Email receiver complained from this API key mails"),
        (SuppressionReason.HARD_BOUNCE, "Email receiver doesn't exist"),
        (SuppressionReason.MANUAL, "Email receiver unavailable"),
    ],
)
async def test_a_suppressed_recipient_is_422_with_its_reason(
    client: httpx.AsyncClient,
    account: Account,
    sessionmaker: Sessionmaker,
    reason: SuppressionReason,
    message: str,
) -> None:
    async with sessionmaker.begin() as session:
        workspace = await _workspace(session, account)
        await suppression.add(
            session, workspace_id=workspace, address="Alice@Example.org", reason=reason
        )

    to_suppressed = await client.post(SEND, headers=account.headers, json=mail(cc="bob@x.org"))
    cc_suppressed = await client.post(
        SEND,
        headers=account.headers,
        json=mail(to={"email": "bob@x.org"}, cc="alice@example.org"),
    )

    assert error_of(to_suppressed, 422) == message
    assert cc_suppressed.status_code == 200, cc_suppressed.text
    assert cc_suppressed.json()["additionalRecipients"] == [
        {"email": "alice@example.org", "error": message}
    ]
    assert (await stored_rows(sessionmaker))["delivery"] == 1


async def _workspace(session: object, account: Account) -> uuid.UUID:
    from posthouse.accounts.service import get_or_create_workspace

    workspace = await get_or_create_workspace(session, name=account.workspace)  # type: ignore[arg-type]
    return workspace.id


async def test_an_empty_idempotency_key_counts_as_none(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    first = await client.post(SEND, headers=account.headers, json={**mail(), "idempotencyKey": ""})
    again = await client.post(SEND, headers=account.headers, json={**mail(), "idempotencyKey": ""})

    assert first.status_code == 200, first.text
    assert "warning" in first.json()
    assert again.json() == first.json()  # the one-hour rule, as without a key
    assert (await stored_rows(sessionmaker))["message"] == 1


async def test_attachments_with_line_breaks_and_a_cc_list_are_sent(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    data = bytes(range(256)) * 40
    wrapped = base64.encodebytes(data).decode()  # 76-character lines, as MIME writes them
    assert "\n" in wrapped

    response = await client.post(
        SEND,
        headers=account.headers,
        json=mail(
            attachments=[{"table.bin": wrapped}, {"a.txt": base64.b64encode(b"A").decode()}],
            cc=["bob@example.org", "carol@example.org, dan@example.org"],
        ),
    )

    assert response.status_code == 200, response.text
    assert [r["email"] for r in response.json()["additionalRecipients"]] == [
        "bob@example.org",
        "carol@example.org",
        "dan@example.org",
    ]
    await settle(worker, sessionmaker)
    files = {
        part.get_filename(): part.get_content()
        for part in smtp_server.received[0].message().iter_attachments()
    }
    assert files == {"table.bin": data, "a.txt": "A"}


async def test_a_sending_domain_that_is_not_verified_is_404_user_domain_not_found(
    settings: Settings, account: Account, sessionmaker: Sessionmaker
) -> None:
    app = create_app(settings.model_copy(update={"require_verified_domains": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(SEND, headers=account.headers, json=mail())

    assert error_of(response, 404) == "User Domain not found"
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_an_identical_email_another_door_sent_without_its_to_is_422(
    client: httpx.AsyncClient, account: Account, sender: SenderTokens, sessionmaker: Sessionmaker
) -> None:
    """The one-hour rule matches emails from any door: one whose "to" was suppressed
    (the native door sends to the rest) has no uuid to answer with."""
    async with sessionmaker.begin() as session:
        workspace = await _workspace(session, account)
        await suppression.add(
            session,
            workspace_id=workspace,
            address="alice@example.org",
            reason=SuppressionReason.COMPLAINT,
        )
    native = {
        "from": sender.email,
        "to": ["alice@example.org"],
        "cc": ["bob@example.org"],
        "subject": "Welcome",
        "body": "<p>Hello Alice</p>",
    }
    first = await client.post("/api/v1/emails", headers=sender.headers, **multipart(native))
    async with sessionmaker.begin() as session:  # lifted: a new email would go to alice
        await suppression.remove(session, workspace_id=workspace, address="alice@example.org")

    response = await client.post(
        SEND,
        headers=account.headers,
        json=mail(
            to={"email": "alice@example.org"},
            **{"from": {"email": sender.email}},
            cc="bob@example.org",
        ),
    )

    assert first.status_code == 202, first.text
    assert error_of(response, 422) == "Email receiver unavailable"
    assert (await stored_rows(sessionmaker))["message"] == 1
