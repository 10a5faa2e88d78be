"""Seed 001's own examples, run unchanged but for the base URL, the key and the template
number (the document's ``number`` placeholder), against the app on a real port: Python
requests, curl, Node (axios and fetch) and PHP (curl). Each mail arrives at the SMTP
server as the document promises.

Only what a client adds after the example is added: a line that prints the response."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from posthouse.delivery.worker import Worker
from tests.dialects.emailmassivo.conftest import Account, Sessionmaker, add_template
from tests.helpers import settle
from tests.smtp_server import SmtpServer, free_port

EXAMPLES = Path(__file__).with_name("examples")
NODE_MODULES = Path(__file__).parents[2] / "node_modules"
HOSTED = "https://api.emailmassivo.com"


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    """The test's app (already started) served by uvicorn on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def example(name: str, *, base_url: str, key: str, template: int | None = None) -> str:
    """The document's example with only the base URL, the key and the template number
    replaced."""
    text = EXAMPLES.joinpath(name).read_text()
    text = text.replace(HOSTED, base_url).replace("YOUR_API_KEY", key)
    if template is not None:
        text, found = re.subn(
            r"(idTemplateMailUser'?\s*(?:=>|:)\s*)number", rf"\g<1>{template}", text
        )
        assert found == 1
    return text


async def run(*command: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=None if env is None else {**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out, err)
    return out.decode()


def needs(binary: str) -> Any:
    return pytest.mark.skipif(
        shutil.which(binary) is None,
        reason=f"{binary} is not installed here (.ci/run installs it, so CI runs this test)",
    )


def _php_has_curl() -> bool:
    if shutil.which("php") is None:
        return False
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False)
    return "curl" in modules.stdout.split()


needs_php = pytest.mark.skipif(
    not _php_has_curl(),
    reason="php with its curl extension is not installed here (.ci/run installs php-cli "
    "and php-curl, so CI runs this test)",
)


@pytest.fixture
async def template(sessionmaker: Sessionmaker, account: Account) -> int:
    return await add_template(sessionmaker, account)


async def arrived_from_template(
    worker: Worker, sessionmaker: Sessionmaker, smtp_server: SmtpServer
) -> None:
    """The template example's mail, as the document promises: to user@example.com, from
    user@example.com, the subject given, the params rendered into the template."""
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["user@example.com"]
    message = received.message()
    assert message["From"] == "string <user@example.com>"
    assert message["To"] == "string <user@example.com>"
    assert message["Subject"] == "string"
    html = message.get_body(("html",))
    assert html is not None
    assert "Hello string, your order string ships string." in html.get_content()


def accepted(body: dict[str, Any]) -> None:
    """The 200 of a template send with an idempotencyKey: the mail's uuid and nothing else."""
    assert list(body) == ["uuid"]
    assert re.fullmatch(r"[0-9a-f-]{36}", body["uuid"])


async def test_the_python_requests_example(
    base_url: str,
    account: Account,
    template: int,
    tmp_path: Path,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    script = tmp_path / "example.py"
    script.write_text(
        example("send_by_template.py.txt", base_url=base_url, key=account.key, template=template)
        + "print(response.status_code)\nprint(response.text)\n"
    )

    status, body = (await run(sys.executable, str(script))).split("\n", 1)

    assert status == "200", body
    accepted(json.loads(body))
    await arrived_from_template(worker, sessionmaker, smtp_server)


@needs("curl")
async def test_the_documented_send_body_with_curl(
    base_url: str,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    """The /send request body example, as the document shows it: "cc": "string" and
    "bcc": "string" are no addresses, so each gets an error and the mail still goes."""
    out = await run(
        "curl", "-sS", "-X", "POST", f"{base_url}/api/v1/external-mails/send",
        "-H", "Content-Type: application/json", "-H", f"X-Api-Key: {account.key}",
        "--data-binary", f"@{EXAMPLES / 'send_body.json'}", "-w", "\n%{http_code}",
    )  # fmt: skip

    body, status = out.rsplit("\n", 1)
    assert status == "200", body
    answer = json.loads(body)
    assert list(answer) == ["uuid", "additionalRecipients"]
    assert answer["additionalRecipients"] == [
        {"email": "string", "error": "Invalid email address"},
        {"email": "string", "error": "Invalid email address"},
    ]
    await settle(worker, sessionmaker)
    [received] = smtp_server.received
    assert received.rcpt_tos == ["user@example.com"]
    message = received.message()
    assert message["Subject"] == "string"
    text = message.get_body(("plain",))
    assert text is not None
    assert text.get_content().strip() == "string"


@needs("node")
@pytest.mark.skipif(
    not (NODE_MODULES / "axios").is_dir(),
    reason="axios is not installed in tests/node_modules (npm ci --prefix tests; make test does)",
)
async def test_the_node_axios_example(
    base_url: str,
    account: Account,
    template: int,
    tmp_path: Path,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    script = tmp_path / "example.js"
    script.write_text(
        example("send_by_template_axios.js", base_url=base_url, key=account.key, template=template)
        .replace(
            "// API response handling",
            "console.log(JSON.stringify({status: response.status, body: response.data}));",
        )
        .replace(
            "// Error handling",
            "console.log(JSON.stringify({status: error.response && error.response.status, "
            "body: error.response ? error.response.data : String(error)}));",
        )
    )
    # require('axios') finds the copy npm installed for the tests.
    out = await run("node", str(script), env={"NODE_PATH": str(NODE_MODULES)})

    answer = json.loads(out)
    assert answer["status"] == 200, answer
    accepted(answer["body"])
    await arrived_from_template(worker, sessionmaker, smtp_server)


@needs("node")
async def test_the_javascript_fetch_example(
    base_url: str,
    account: Account,
    template: int,
    tmp_path: Path,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    script = tmp_path / "example.js"
    script.write_text(
        example("send_by_template_fetch.js", base_url=base_url, key=account.key, template=template)
        .replace("// API response handling", "console.log(JSON.stringify(data));")
        .replace("// Error handling", "console.log(String(error)); process.exitCode = 1;")
    )

    accepted(json.loads(await run("node", str(script))))
    await arrived_from_template(worker, sessionmaker, smtp_server)


@needs_php
async def test_the_php_example_as_printed_gets_invalid_api_key(
    base_url: str, account: Account, template: int, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The PHP example's associative $headers array sends no header at all (PHP's curl
    takes the values only, "application/json" and the key, which are no header lines):
    the document says so, and this is the error it names."""
    script = tmp_path / "example.php"
    script.write_text(
        example("send_by_template.php", base_url=base_url, key=account.key, template=template)
        + "echo $response;\n"
    )

    answer = json.loads(await run("php", str(script)))

    assert answer == {"message": "Invalid API key", "error": "Unauthorized", "statusCode": 401}
    assert smtp_server.received == []


@needs_php
async def test_the_php_example_with_the_documents_header_fix(
    base_url: str,
    account: Account,
    template: int,
    tmp_path: Path,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    source = example("send_by_template.php", base_url=base_url, key=account.key, template=template)
    fix = example("php_headers_fix.php", base_url=base_url, key=account.key)
    printed = re.search(r"\$headers = array\(\n.*?\n\);\n", source, re.DOTALL)
    assert printed is not None
    script = tmp_path / "example.php"
    script.write_text(source.replace(printed.group(0), fix) + "echo $response;\n")

    accepted(json.loads(await run("php", str(script))))
    await arrived_from_template(worker, sessionmaker, smtp_server)
