"""`posthouse template`, run as an operator runs it."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from posthouse import cli
from posthouse.config import get_settings


class Cli:
    async def __call__(self, *args: str, check: bool = True) -> Result:
        result = await asyncio.to_thread(CliRunner().invoke, cli.app, list(args))
        if check:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self(*args)).stdout)


@pytest.fixture
def posthouse(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("POSTHOUSE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield Cli()
    get_settings.cache_clear()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {
        "html": tmp_path / "welcome.html",
        "text": tmp_path / "welcome.txt",
        "v2": tmp_path / "welcome-v2.html",
        "broken": tmp_path / "broken.html",
    }
    paths["html"].write_text("<p>Hello {{ name }}</p>")
    paths["text"].write_text("Hello {{ name }}")
    paths["v2"].write_text("<p>Hi {{ name }}!</p>")
    paths["broken"].write_text("<p>\n{% for x in %}</p>")
    return {key: str(path) for key, path in paths.items()}


class TestTemplateCommands:
    async def test_add_prints_id_number_and_version(
        self, posthouse: Cli, files: dict[str, str]
    ) -> None:
        added = await posthouse.json(
            "template", "add", "--workspace", "shop", "--name", "welcome",
            "--subject", "Welcome {{ name }}", "--html-file", files["html"],
            "--text-file", files["text"], "--json",
        )  # fmt: skip

        assert set(added) == {"id", "number", "version"}
        assert added["id"].startswith("tpl_")
        assert (added["number"], added["version"]) == (1, 1)
        shown = await posthouse.json("template", "show", "1", "--workspace", "shop", "--json")
        assert (shown["id"], shown["subject"], shown["text"]) == (
            added["id"],
            "Welcome {{ name }}",
            "Hello {{ name }}",
        )

    async def test_update_publish_list_and_delete(
        self, posthouse: Cli, files: dict[str, str]
    ) -> None:
        added = await posthouse.json(
            "template", "add", "--workspace", "shop", "--name", "welcome",
            "--html-file", files["html"], "--json",
        )  # fmt: skip
        template = added["id"]

        updated = await posthouse.json(
            "template", "update", template, "--workspace", "shop",
            "--html-file", files["v2"], "--json",
        )  # fmt: skip
        published = await posthouse.json(
            "template", "publish", template, "--workspace", "shop", "--version", "2", "--json"
        )
        listed = await posthouse.json("template", "list", "--workspace", "shop", "--json")
        await posthouse("template", "delete", template, "--workspace", "shop")
        gone = await posthouse("template", "show", template, "--workspace", "shop", check=False)

        assert (updated["version"], updated["publishedVersion"]) == (2, 1)
        assert published["publishedVersion"] == 2
        assert [(t["id"], t["latestVersion"], t["publishedVersion"]) for t in listed] == [
            (template, 2, 2)
        ]
        assert gone.exit_code == 2
        assert f"template {template} not found" in gone.stderr

    async def test_a_template_that_does_not_compile_is_refused(
        self, posthouse: Cli, files: dict[str, str]
    ) -> None:
        await posthouse("workspace", "create", "shop")

        result = await posthouse(
            "template", "add", "--workspace", "shop", "--name", "broken",
            "--html-file", files["broken"], check=False,
        )  # fmt: skip

        assert result.exit_code == 2
        assert "error: html: line 2: " in result.stderr
        listed = await posthouse.json("template", "list", "--workspace", "shop", "--json")
        assert listed == []
