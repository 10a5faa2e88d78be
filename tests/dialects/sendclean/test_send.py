"""Seed 003: sendMail and sendTemplate with the document's own bodies, the mail as it
arrives at a real SMTP server, the X-STes-* controls, and the document's errors."""

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import ApiKey, Message
from posthouse.delivery.worker import Worker
from posthouse.domains import service as domains_service
from posthouse.protections import suppression
from posthouse.workspaces import service as workspaces
from posthouse.workspaces.service import WorkspaceChanges
from tests.conftest import PG_URL
from tests.dialects.sendclean.conftest import (
    SEND_MAIL_EXAMPLE,
    SEND_TEMPLATE_EXAMPLE,
    Account,
    add_template,
    make_account,
    with_account,
)
from tests.helpers import NOTHING_STORED, settle, stored_rows
from tests.smtp_server import SmtpServer, free_port

Sessionmaker = async_sessionmaker[AsyncSession]
PREFIXES = ["/messages", "/v1.0/messages"]
TOKEN_MISMATCH = {
    "status": "error",
    "code": -1,
    "name": "AuthenticationError",
    "message": "Token MissMatch",
}


def error(response: httpx.Response, status: int, name: str) -> str:
    """The document's error body; its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "code", "name", "message"}
    assert body["status"] == "error"
    assert body["code"] == -1
    assert body["name"] == name
    assert isinstance(body["message"], str)
    assert body["message"]
    return str(body["message"])


def mail(**message: Any) -> dict[str, Any]:
    """A small sendMail message (from the document's sender), with ``message`` over it."""
    return {
        "subject": "Order shipped",
        "from_email": "message.from_email@example.com",
        "to": [{"email": "ada@example.com"}],
        "html": "<p>Your order is on its way</p>",
        **message,
    }


def template_message(template_id: str, **message: Any) -> dict[str, Any]:
    fields = mail(template_id=template_id, **message)
    del fields["html"]
    return fields


async def delivered(worker: Worker, sessionmaker: Sessionmaker, smtp: SmtpServer) -> EmailMessage:
    await settle(worker, sessionmaker)
    [received] = smtp.received
    return received.message()


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_the_documents_send_mail_body_is_queued_and_arrives_as_promised(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    prefix: str,
) -> None:
    response = await client.post(
        f"{prefix}/sendMail", json=with_account(SEND_MAIL_EXAMPLE, account)
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "message": "message have been Queued ... "}
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["recipient.email@example.com"]
    message = received.message()
    assert message["From"] == "Example Name <message.from_email@example.com>"
    assert message["To"] == "Recipient Name <recipient.email@example.com>"
    assert message["Reply-To"] == "message.reply@example.com"
    assert message["Subject"] == "example subject"
    assert message["X-Unique-Id"] == "id "
    parts = {part.get_content_type(): part for part in message.walk() if not part.get_filename()}
    assert parts["text/plain"].get_content().strip() == "Example text content"
    assert "Example HTML content" in parts["text/html"].get_content()
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<IMAGECID>"
    assert image.get_content() == b"example file"
    [attachment] = [p for p in message.walk() if p.get_filename() == "myfile.txt"]
    assert attachment.get_content().strip() == "example file"
    assert not [name for name in message if name.lower().startswith("x-stes")]


async def test_to_cc_and_bcc_by_type(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    recipients = [
        {"email": "ada@example.com", "name": "Ada"},
        {"email": "bob@example.com", "type": "cc"},
        {"email": "eve@example.com", "type": "bcc"},
    ]
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": mail(to=recipients)}
    )

    assert response.status_code == 200, response.text
    await settle(worker, sessionmaker)
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        "ada@example.com",
        "bob@example.com",
        "eve@example.com",
    ]
    message = smtp_server.received[0].message()
    assert message["To"] == "Ada <ada@example.com>"
    assert message["Cc"] == "bob@example.com"
    assert message["Bcc"] is None
    assert b"eve@example.com" not in smtp_server.received[0].data


async def test_the_x_stes_controls_are_honoured_and_never_sent_on(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    headers = {
        "X-STes-TrackOpen": "yes",
        "X-STes-TrackClick": "both",
        "X-STes-Autotext": "yes",
        "X-STes-AutoHtml": "yes",
        "X-Campaign": "spring",
    }
    message = mail(
        html=None,
        text="Hello\nsee https://shop.example/orders/1\n\nBye",
        headers=headers,
    )
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": message}
    )

    assert response.status_code == 200, response.text
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Message))).one()
    assert (stored.track_opens, stored.track_clicks, stored.track_text_clicks) == (
        True,
        True,
        True,
    )
    # AutoHtml: an HTML version of the text.
    assert stored.html is not None
    assert stored.html.startswith("<p>Hello<br>")
    received = await delivered(worker, sessionmaker, smtp_server)
    assert received["X-Campaign"] == "spring"
    assert not [name for name in received if name.lower().startswith("x-stes")]
    html = next(p for p in received.walk() if p.get_content_type() == "text/html")
    assert "/t/o/" in html.get_content()  # the open pixel
    text = next(p for p in received.walk() if p.get_content_type() == "text/plain")
    assert "/t/c/" in text.get_content()  # the text's link, tracked
    assert "shop.example/orders/1" not in text.get_content()


@pytest.mark.parametrize(
    ("headers", "tracked"),
    [
        ({"X-STes-TrackOpen": "no", "X-STes-TrackClick": "no"}, (False, False, False)),
        ({"X-STes-TrackClick": "html"}, (False, True, False)),
        ({"X-STes-TrackClick": "TEXT"}, (False, False, True)),
    ],
)
async def test_tracking_as_the_headers_ask(
    client: httpx.AsyncClient,
    account: Account,
    sessionmaker: Sessionmaker,
    headers: dict[str, str],
    tracked: tuple[bool, bool, bool],
) -> None:
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": mail(headers=headers)}
    )

    assert response.status_code == 200, response.text
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Message))).one()
    assert (stored.track_opens, stored.track_clicks, stored.track_text_clicks) == tracked


async def test_without_auto_html_a_text_message_stays_text(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    message = mail(html=None, text="Plain", headers={"X-STes-AutoHtml": "no"})
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": message}
    )

    assert response.status_code == 200, response.text
    async with sessionmaker() as session:
        stored = (await session.scalars(select(Message))).one()
    assert (stored.html, stored.text) == (None, "Plain")


@pytest.mark.parametrize(
    "name", ["X-STes-TrackingDomain", "X-STes-SigningDomain", "X-STes-ReturnPathDomain"]
)
async def test_domain_controls_accept_only_the_accounts_domains(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker, name: str
) -> None:
    async with sessionmaker.begin() as session:
        workspace_id = await workspaces.workspace_id(session, name=account.workspace)
        await domains_service.add_domain(
            session, workspace_id=workspace_id, name="example.com", mail_host="mail.test"
        )
    ours = await client.post(
        "/messages/sendMail",
        json={**account.credentials, "message": mail(headers={name: "example.com"})},
    )
    theirs = await client.post(
        "/messages/sendMail",
        json={**account.credentials, "message": mail(headers={name: "other.example"})},
    )

    assert ours.status_code == 200, ours.text
    assert error(theirs, 400, "ValidationError") == (
        f"message.headers.{name} 'other.example' is not a domain of this account"
    )
    assert (await stored_rows(sessionmaker))["message"] == 1


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_the_documents_send_template_body_renders_and_arrives(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    prefix: str,
) -> None:
    template_id = await add_template(sessionmaker)

    response = await client.post(
        f"{prefix}/sendTemplate",
        json=with_account(SEND_TEMPLATE_EXAMPLE, account, template_id),
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "message": "250 Message Queued..."}
    message = await delivered(worker, sessionmaker, smtp_server)
    assert message["Subject"] == "example subject"  # the request's subject over the template's
    assert message["Reply-To"] == "message.reply@example.com"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert "Hi xyz, write to info@example.com" in html.get_content()
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<IMAGECID>"


async def test_a_template_by_number_takes_its_own_subject(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    await add_template(sessionmaker)
    message = template_message("1", dynamic_value={"NAME": "Ada", "Email": "a@b.c"})
    del message["subject"]

    response = await client.post(
        "/messages/sendTemplate", json={**account.credentials, "message": message}
    )

    assert response.status_code == 200, response.text
    assert (await delivered(worker, sessionmaker, smtp_server))["Subject"] == "Hello Ada"


async def test_an_unknown_template_is_a_validation_error_and_stores_nothing(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    message = template_message("tpl_01JD0000000000000000000000")

    response = await client.post(
        "/messages/sendTemplate", json={**account.credentials, "message": message}
    )

    error(response, 404, "ValidationError")
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_another_accounts_template_is_as_unknown(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    await make_account(sessionmaker, "globex", senders=())
    theirs = await add_template(sessionmaker, "globex")
    message = template_message(theirs)

    response = await client.post(
        "/messages/sendTemplate", json={**account.credentials, "message": message}
    )

    error(response, 404, "ValidationError")


class TestCredentials:
    @pytest.mark.parametrize("wrong", ["owner_id", "token", "smtp_user_name"])
    async def test_any_credential_not_matching_is_token_mismatch(
        self,
        client: httpx.AsyncClient,
        account: Account,
        sessionmaker: Sessionmaker,
        wrong: str,
    ) -> None:
        other = await make_account(sessionmaker, "globex", senders=())
        credentials = {**account.credentials, wrong: other.credentials[wrong]}
        if wrong == "smtp_user_name":
            credentials[wrong] = "smtp99999"

        response = await client.post("/messages/sendMail", json={**credentials, "message": mail()})

        assert response.status_code == 401
        assert response.json() == TOKEN_MISMATCH
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    @pytest.mark.parametrize("token", ["example token", "phk_x.y", ""])
    async def test_a_token_that_is_no_key_is_token_mismatch_or_missing(
        self, client: httpx.AsyncClient, account: Account, token: str
    ) -> None:
        response = await client.post(
            "/messages/sendMail",
            json={**account.credentials, "token": token, "message": mail()},
        )
        if token:
            assert response.status_code == 401
            assert response.json() == TOKEN_MISMATCH
        else:
            assert error(response, 400, "ValidationError") == "token is required (a string)"

    async def test_a_key_without_the_send_scope_or_revoked_is_token_mismatch(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        viewer = await make_account(sessionmaker, "acme", scopes="channel.view")
        revoked = await make_account(sessionmaker, "acme", user_name="old", senders=())
        async with sessionmaker.begin() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.name == "old").values(revoked_at=utcnow())
            )

        for account in (viewer, revoked):
            response = await client.post(
                "/messages/sendMail", json={**account.credentials, "message": mail()}
            )
            assert response.status_code == 401
            assert response.json() == TOKEN_MISMATCH

    async def test_a_from_address_that_is_not_the_accounts_sender_is_refused(
        self, client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
    ) -> None:
        response = await client.post(
            "/messages/sendMail",
            json={**account.credentials, "message": mail(from_email="ceo@elsewhere.example")},
        )

        assert error(response, 404, "ValidationError") == (
            "message.from_email is not a sender of this account"
        )
        assert await stored_rows(sessionmaker) == NOTHING_STORED


class TestProtections:
    async def test_every_recipient_suppressed_is_a_general_error(
        self, client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
    ) -> None:
        async with sessionmaker.begin() as session:
            workspace_id = await workspaces.workspace_id(session, name=account.workspace)
            await suppression.add(
                session, workspace_id=workspace_id, address="ada@example.com", created_by="test"
            )

        response = await client.post(
            "/messages/sendMail", json={**account.credentials, "message": mail()}
        )

        error(response, 422, "GeneralError")
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_a_used_up_quota_is_a_general_error(
        self, client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
    ) -> None:
        async with sessionmaker.begin() as session:
            await workspaces.update(
                session, name=account.workspace, changes=WorkspaceChanges(monthly_quota=1)
            )
        body = {**account.credentials, "message": mail()}

        first = await client.post("/messages/sendMail", json=body)
        second = await client.post("/messages/sendMail", json=body)

        assert first.status_code == 200, first.text
        error(second, 400, "GeneralError")
        assert (await stored_rows(sessionmaker))["message"] == 1

    async def test_an_unreachable_database_is_a_general_error_with_retry_after(
        self, settings: Settings, account: Account, tmp_path: Path
    ) -> None:
        if PG_URL:
            dead = make_url(settings.database_url).set(port=free_port())
            database_url = dead.render_as_string(False)
        else:
            database_url = f"sqlite+aiosqlite:///{tmp_path}/missing/posthouse.db"
        app = create_app(settings.model_copy(update={"database_url": database_url}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.post(
                    "/messages/sendMail", json={**account.credentials, "message": mail()}
                )

        error(response, 503, "GeneralError")
        assert response.headers["Retry-After"] == "5"
