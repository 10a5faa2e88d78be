"""The document's examples against a real ``posthouse api`` process, unchanged but for the
base URL, the credentials and its redacted addresses ("[email protected]", which the
document's web page hid): curl and Python ``requests``, as a client would run them, and
the mail arriving at a real SMTP server."""

import asyncio
import json
import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.dialects.everlytic.conftest import SENDER, URL, Account
from tests.dialects.everlytic.test_send import JOE, JOHN, SANDY, html_of, make_template
from tests.helpers import NOTHING_STORED, stored_rows
from tests.processes import ApiProcess
from tests.smtp_server import SmtpServer

REDACTED = "[email protected]"
REPLIES = "replies@yourstore.example"

# "Example using HTML provided in the body", verbatim (its trailing comma included).
HTML_EXAMPLE = """{
  "body": {
    "html": "<h1>Hello there, {{recipientName}}, how was the {{sports}} match?</h1>",
  "text": "Hello there, how was the match?",
  "personalisation_fields": {
    "common_fields": {"sports": "soccer" }
  },
    "unique_fields": [
        {
            "[email protected]": {"recipientName": "Mr Joe Bloggs"}
        },
        {
            "[email protected]": {"recipientName": "Johnny boy"}
        }
    ]
  },
  "options": {
    "group_name": "Track Engagement",
    "track_links": true,
    "track_opens": true
  },
  "headers": {
    "subject": "Raw HTML Template",
    "from": {
      "email": "[email protected]",
      "name": "Boss"
    },
    "to": [
      {
        "email": "[email protected]",
        "name": "Joe"
      },
    {
    "email": "[email protected]",
    "name": "John"
    }
    ],
    "cc": [
      {
        "email": "[email protected]",
        "name": "Sandy"
      }
    ],
  "reply_to": {
    "email": "[email protected]"
  }
  },
  "attachments": {
    "data": [
      {
        "filename": "Test.txt",
        "data": "V2VsbCBkb25lIQ=="
      }
    ],
\x20\x20
}"""
HTML_EXAMPLE_ADDRESSES = [JOE, JOHN, SENDER, JOE, JOHN, SANDY, REPLIES]

# "Example using a template ID", verbatim.
TEMPLATE_EXAMPLE = """curl --location 'https://api.everlytic.net/transactional/email/v1/mail' \\
--header 'Content-Type: application/json' \\
--data-raw '{
  "options": {
    "group_name": "Track Engagement",
    "track_links": true,
    "track_opens": true
  },
  "headers": {
    "to": [
      {
        "email": "[email protected]",
        "name": "Joe"
      },
    {
    "email": "[email protected]",
    "name": "John"
    }
    ],
    "cc": [
      {
        "email": "[email protected]",
        "name": "Sandy"
      }
    ]
  }

}'"""
TEMPLATE_EXAMPLE_ADDRESSES = [JOE, JOHN, SANDY]


def filled(text: str, addresses: list[str]) -> str:
    """The document's text with its redacted addresses, in order, filled in."""
    assert text.count(REDACTED) == len(addresses)
    for address in addresses:
        text = text.replace(REDACTED, address, 1)
    return text


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[ApiProcess]:
    process = ApiProcess(settings, tmp_path, "api")
    try:
        await process.started()
        yield process
    finally:
        process.stop()


def run_curl(command: str, api: ApiProcess, account: Account) -> tuple[int, dict[str, Any]]:
    """A curl command line as the document prints it, run by a shell and the real curl:
    its base URL swapped and the credentials added."""
    command = command.replace("https://api.everlytic.net", api.url)
    assert command.startswith("curl ")
    command += (
        f" --silent --user {shlex.quote(account.workspace + ':' + account.key)}"
        " --write-out '\\n%{http_code}'"
    )
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def closed(example: str) -> str:
    """The HTML example as its authors meant it: it never closes its outer object and
    leaves a comma after the attachments' data."""
    fixed = example.replace("],\n  \n}", "]\n  }\n}")
    assert fixed != example
    return fixed


class TestCurl:
    async def test_the_html_example_as_printed_is_not_json_and_is_a_400(
        self,
        api: ApiProcess,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        """Unclosed, with a trailing comma, it is not JSON: refused as "formatted
        improperly", as a strict JSON parser (the provider's PHP one too) refuses it."""
        data = filled(HTML_EXAMPLE, HTML_EXAMPLE_ADDRESSES)
        command = (
            f"curl --location '{api.url}{URL}' --header 'Content-Type: application/json' "
            f"--data-raw {shlex.quote(data)}"
        )

        status, body = await asyncio.to_thread(run_curl, command, api, account)

        assert status == 400
        assert body["message"].startswith("The request body was formatted improperly")
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_the_html_example_closed_is_delivered(
        self,
        api: ApiProcess,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        data = closed(filled(HTML_EXAMPLE, HTML_EXAMPLE_ADDRESSES))
        command = (
            f"curl --location '{api.url}{URL}' --header 'Content-Type: application/json' "
            f"--data-raw {shlex.quote(data)}"
        )

        status, body = await asyncio.to_thread(run_curl, command, api, account)

        assert status == 200, body
        assert len(body["transactions"]) == 3
        await worker.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [JOE, JOHN, SANDY]
        [joe] = [r for r in smtp_server.received if r.rcpt_tos == [JOE]]
        assert "Hello there, Mr Joe Bloggs, how was the soccer match?" in html_of(joe)

    async def test_the_template_example_as_printed_names_the_missing_from(
        self,
        api: ApiProcess,
        account: Account,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        command = filled(TEMPLATE_EXAMPLE, TEMPLATE_EXAMPLE_ADDRESSES)

        status, body = await asyncio.to_thread(run_curl, command, api, account)

        assert status == 412
        assert body["message"] == {
            "errors": {"headers.from.email": ["The headers.from.email field is required."]}
        }
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_the_template_example_with_its_template_id_is_delivered(
        self,
        api: ApiProcess,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        template_id = await make_template(sessionmaker, account)
        command = filled(TEMPLATE_EXAMPLE, TEMPLATE_EXAMPLE_ADDRESSES).replace(
            '"group_name": "Track Engagement",',
            f'"group_name": "Track Engagement", "template_id": "{template_id}",',
        )

        status, body = await asyncio.to_thread(run_curl, command, api, account)

        assert status == 200, body
        assert len(body["transactions"]) == 3
        await worker.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [JOE, JOHN, SANDY]
        assert smtp_server.received[0].message()["Subject"] == "Your order has shipped"


class TestPythonRequests:
    async def test_the_html_example_with_requests_is_delivered(
        self,
        api: ApiProcess,
        account: Account,
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        payload = json.loads(closed(filled(HTML_EXAMPLE, HTML_EXAMPLE_ADDRESSES)))

        def send() -> requests.Response:
            return requests.post(
                f"{api.url}/transactional/email/v1/mail",
                json=payload,
                auth=(account.workspace, account.key),
                timeout=30,
            )

        response = await asyncio.to_thread(send)

        assert response.status_code == 200, response.text
        transactions = response.json()["transactions"]
        assert len({t["id"] for t in transactions}) == 3
        await worker.run_until_idle()
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [JOE, JOHN, SANDY]
        [john] = [r for r in smtp_server.received if r.rcpt_tos == [JOHN]]
        assert "Hello there, Johnny boy, how was the soccer match?" in html_of(john)
        [attachment] = list(john.message().iter_attachments())
        assert attachment.get_content() == "Well done!"

    async def test_wrong_credentials_with_requests_get_login_required(
        self, api: ApiProcess, account: Account
    ) -> None:
        def send() -> requests.Response:
            return requests.post(
                f"{api.url}/transactional/email/v1/mail",
                json={"headers": {}},
                auth=(account.workspace, "wrong"),
                timeout=30,
            )

        response = await asyncio.to_thread(send)

        assert response.status_code == 401
        assert response.json()["message"] == "Login Required"
