"""Seed 003's examples as its users run them, against posthouse served by uvicorn: the
document's curl line for sendTemplateHTTPGet, and its JSON bodies sent with curl and with
Python requests. Only the base URL and the credentials (and the template id, which names
one of the account's templates) differ from the document."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.delivery.worker import Worker
from tests.cli.test_cli import run
from tests.dialects.sendclean.conftest import (
    MESSAGE_INFO_EXAMPLE,
    SEND_MAIL_EXAMPLE,
    SEND_TEMPLATE_EXAMPLE,
    Account,
    add_template,
    curl_url,
    with_account,
)
from tests.helpers import NOTHING_STORED, settle, stored_rows
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]


async def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """curl as a user runs it; the HTTP status and the JSON body."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body)


async def test_the_documents_curl_line_sends_the_template(
    base_url: str,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    template_id = await add_template(sessionmaker)

    status, body = await curl(curl_url(base_url, account, template_id))

    assert (status, body) == (200, {"status": "success", "message": "250 Message Queued..."})
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["xyz@example.com"]
    message = received.message()
    assert message["From"] == "info@example.com"
    assert message["Subject"] == "hello"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert "Hi xyz, write to xyz@example.com" in html.get_content()


async def test_the_curl_line_with_a_wrong_token_is_the_documents_error(
    base_url: str, account: Account, sessionmaker: Sessionmaker
) -> None:
    template_id = await add_template(sessionmaker)
    url = curl_url(base_url, account, template_id).replace(account.token, "token")

    status, body = await curl(url)

    assert (status, body) == (
        401,
        {
            "status": "error",
            "code": -1,
            "name": "AuthenticationError",
            "message": "Token MissMatch",
        },
    )
    assert await stored_rows(sessionmaker) == NOTHING_STORED


async def test_send_mail_with_curl(
    base_url: str,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    status, body = await curl(
        "-X", "POST", f"{base_url}/messages/sendMail",
        "-H", "Content-Type: application/json",
        "--data", json.dumps(with_account(SEND_MAIL_EXAMPLE, account)),
    )  # fmt: skip

    assert (status, body) == (
        200,
        {"status": "success", "message": "message have been Queued ... "},
    )
    await settle(worker, sessionmaker)
    assert smtp_server.received[0].rcpt_tos == ["recipient.email@example.com"]


@pytest.mark.parametrize("prefix", ["/messages", "/v1.0/messages"])
async def test_the_documents_bodies_with_python_requests(
    base_url: str,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
    prefix: str,
) -> None:
    template_id = await add_template(sessionmaker)
    url = base_url + prefix

    sent = await asyncio.to_thread(
        requests.post, f"{url}/sendMail", json=with_account(SEND_MAIL_EXAMPLE, account)
    )
    templated = await asyncio.to_thread(
        requests.post,
        f"{url}/sendTemplate",
        json=with_account(SEND_TEMPLATE_EXAMPLE, account, template_id),
    )
    fetched = await asyncio.to_thread(
        requests.get,
        f"{url}/sendTemplateHTTPGet",
        params={
            **account.credentials,
            "template_id": template_id,
            "subject": "hello",
            "from_email": "info@example.com",
            "to": "xyz@example.com",
            "dynamic_value[NAME]": "xyz",
            "dynamic_value[Email]": "xyz@example.com",
        },
    )

    assert sent.status_code == 200, sent.text
    assert sent.json() == {"status": "success", "message": "message have been Queued ... "}
    assert templated.json() == {"status": "success", "message": "250 Message Queued..."}
    assert fetched.json() == {"status": "success", "message": "250 Message Queued..."}
    assert fetched.headers["Cache-Control"] == "no-store"
    await settle(worker, sessionmaker)
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == [
        "recipient.email@example.com",
        "recipient.email@example.com",
        "xyz@example.com",
    ]

    example = {**with_account(MESSAGE_INFO_EXAMPLE, account), "x_unique_id": "id "}
    info = await asyncio.to_thread(requests.post, f"{url}/getMessageInfo", json=example)

    assert info.status_code == 200, info.text
    data = info.json()["message_data"]
    assert [(e["email"], e["status"]) for e in data] == [
        ("recipient.email@example.com", "delivered"),
        ("recipient.email@example.com", "delivered"),
    ]


async def test_credentials_as_an_operator_issues_them_with_the_cli(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    """owner_id, token and smtp_user_name from `posthouse ... --json`, as README shows."""

    def posthouse(*args: str) -> Any:
        result = run(*args, "--json", database_url=database_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    posthouse("sender", "add", "message.from_email@example.com", "--workspace", "shop")
    key = posthouse(
        "key", "create", "--workspace", "shop", "--scopes", "send", "--name", "smtp12345"
    )
    credentials = {"owner_id": key["workspace_id"], "token": key["key"]}

    response = await client.post(
        "/messages/sendMail",
        json={**SEND_MAIL_EXAMPLE, **credentials, "smtp_user_name": "smtp12345"},
    )
    wrong_name = await client.post(
        "/messages/sendMail",
        json={**SEND_MAIL_EXAMPLE, **credentials, "smtp_user_name": "smtp54321"},
    )

    assert response.status_code == 200, response.text
    assert wrong_name.status_code == 401
