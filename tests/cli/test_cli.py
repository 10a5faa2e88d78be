"""`posthouse` as an operator runs it: the console script in its own process."""

import json
import os
import shlex
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from typer.testing import CliRunner

from posthouse import cli
from posthouse.db.models import Base
from tests.conftest import multipart
from tests.helpers import stored_rows

POSTHOUSE = str(Path(sys.executable).with_name("posthouse"))


def run(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POSTHOUSE_")}
    environment["POSTHOUSE_DATABASE_URL"] = database_url
    # cwd: a scratch directory, so no .env file is read and var/ lands there.
    return subprocess.run(
        [POSTHOUSE, *args], env=environment, cwd=cwd, capture_output=True, text=True, timeout=60
    )


class TestSenderAdd:
    async def test_json_output_has_exactly_the_documented_keys_and_the_tokens_work(
        self, client: httpx.AsyncClient, database_url: str, tmp_path: Path
    ) -> None:
        result = run(
            "sender", "add", "no-reply@yourstore.example", "--workspace", "shop", "--json",
            database_url=database_url, cwd=tmp_path,
        )  # fmt: skip

        assert result.returncode == 0, result.stderr
        issued = json.loads(result.stdout)
        assert sorted(issued) == ["accessToken", "email", "secretToken", "workspace"]
        assert (issued["workspace"], issued["email"]) == ("shop", "no-reply@yourstore.example")
        response = await client.post(
            "/api/v1/emails",
            headers={
                "X-Api-Access-Token": issued["accessToken"],
                "X-Api-Secret-Token": issued["secretToken"],
            },
            **multipart(
                {
                    "from": "no-reply@yourstore.example",
                    "to": ["alice@example.com"],
                    "subject": "Hello",
                    "body": "<p>Hi</p>",
                }
            ),
        )
        assert response.status_code == 202, response.text

    async def test_tokens_are_stored_only_as_hashes(
        self, database_url: str, tmp_path: Path, sessionmaker: async_sessionmaker
    ) -> None:
        result = run(
            "sender", "add", "no-reply@yourstore.example", "--json",
            database_url=database_url, cwd=tmp_path,
        )  # fmt: skip
        issued = json.loads(result.stdout)

        dump = []
        async with sessionmaker() as session:
            for table in Base.metadata.sorted_tables:
                dump += [repr(tuple(row)) for row in await session.execute(select(table))]

        text = "\n".join(dump)
        assert "no-reply@yourstore.example" in text  # the dump does see the sender's row
        for token in (issued["accessToken"], issued["secretToken"]):
            assert token not in text
            assert token[4:] not in text  # nor without its prefix

    def test_the_human_output_shows_the_tokens_once(
        self, database_url: str, tmp_path: Path
    ) -> None:
        result = run(
            "sender", "add", "ops@yourstore.example", database_url=database_url, cwd=tmp_path
        )

        assert result.returncode == 0, result.stderr
        assert "access token: pha_" in result.stdout
        assert "secret token: phs_" in result.stdout
        assert "shown once" in result.stdout

    def test_an_invalid_address_is_an_error_and_creates_nothing(
        self, database_url: str, tmp_path: Path
    ) -> None:
        result = run(
            "sender", "add", "not-an-address", "--json", database_url=database_url, cwd=tmp_path
        )

        assert result.returncode == 2
        assert result.stdout == ""
        assert "Invalid sender email" in result.stderr


class TestMigrate:
    def test_a_fresh_database_gets_the_whole_schema_and_a_second_run_changes_nothing(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "var" / "fresh.db"
        url = f"sqlite+aiosqlite:///{path}"

        first = run("migrate", database_url=url, cwd=tmp_path)
        second = run("migrate", database_url=url, cwd=tmp_path)

        assert (first.returncode, first.stdout.strip()) == (0, "database is up to date"), (
            first.stderr
        )
        assert (second.returncode, second.stdout.strip()) == (0, "database is up to date")
        with sqlite3.connect(path) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        assert "alembic_version" in tables

    def test_the_configured_database_is_up_to_date(self, database_url: str, tmp_path: Path) -> None:
        result = run("migrate", database_url=database_url, cwd=tmp_path)

        assert result.returncode == 0, result.stderr


class TestDemo:
    async def test_the_printed_curl_carries_real_tokens_and_sends(
        self,
        client: httpx.AsyncClient,
        database_url: str,
        tmp_path: Path,
        sessionmaker: async_sessionmaker,
    ) -> None:
        result = run(
            "demo", "--url", "http://127.0.0.1:8025", database_url=database_url, cwd=tmp_path
        )
        again = run("demo", database_url=database_url, cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        command = result.stdout[result.stdout.index("curl -X POST") :]
        words = shlex.split(command)
        assert words[:4] == ["curl", "-X", "POST", "http://127.0.0.1:8025/api/v1/emails"]
        headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
        [form] = [words[i + 1] for i, word in enumerate(words) if word == "-F"]
        payload, content_type = form.removeprefix("payload=").rsplit(";type=", 1)
        assert content_type == "application/json"
        assert headers["X-Api-Access-Token"].startswith("pha_")
        response = await client.post(
            "/api/v1/emails", headers=headers, **multipart(json.loads(payload))
        )
        assert response.status_code == 202, response.text
        assert response.json()["to"] == ["alice@example.com", "bob@example.com"]
        assert (await stored_rows(sessionmaker))["delivery"] == 2
        # A second run reuses the saved credentials, kept private to the operator.
        assert again.returncode == 0, again.stderr
        assert headers["X-Api-Secret-Token"] in again.stdout
        saved = tmp_path / "var" / "demo-credentials.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600


class TestHelp:
    def test_every_command_is_explained(self, tmp_path: Path) -> None:
        overview = run("--help", database_url="sqlite+aiosqlite:///unused.db", cwd=tmp_path)

        assert overview.returncode == 0, overview.stderr
        for command in ("migrate", "serve", "api", "worker", "sender", "demo"):
            assert command in overview.stdout
            own = CliRunner().invoke(cli.app, [command, "--help"])
            assert own.exit_code == 0, own.output
            assert "Usage" in own.output
