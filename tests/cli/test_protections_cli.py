"""`posthouse workspace` and `posthouse suppression`, run as the operator runs them."""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from posthouse import cli
from posthouse.config import get_settings
from posthouse.db.base import utcnow
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens
from tests.protections.support import send, set_workspace
from tests.smtp_server import SmtpServer


class Cli:
    """Runs ``posthouse`` in-process (in a thread, as it runs its own event loop)."""

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


class TestWorkspaceCommands:
    async def test_engagement_defaults_are_off_until_set(self, posthouse: Cli) -> None:
        created = await posthouse.json("workspace", "create", "shop", "--json")
        await posthouse("workspace", "update", "shop", "--track-opens", "--track-clicks", "both")
        shown = await posthouse.json("workspace", "show", "shop", "--json")
        wrong = await posthouse(
            "workspace", "update", "shop", "--track-clicks", "always", check=False
        )

        assert (created["trackOpens"], created["trackClicks"]) == (False, "none")
        assert (shown["trackOpens"], shown["trackClicks"]) == (True, "both")
        assert wrong.exit_code != 0
        assert "track_clicks must be one of none, html, text, both" in wrong.output

    async def test_create_update_and_show(self, posthouse: Cli) -> None:
        created = await posthouse.json(
            "workspace", "create", "shop", "--monthly-quota", "500", "--json"
        )
        await posthouse("workspace", "update", "shop",
            "--max-bounce-rate", "0.02",
            "--max-complaint-rate", "0.0005",
            "--rate-min-volume", "50",
        )  # fmt: skip
        shown = await posthouse.json("workspace", "show", "shop", "--json")
        again = await posthouse("workspace", "create", "shop", check=False)

        assert created["monthlyQuota"] == 500
        assert created["usageThisMonth"] == 0
        assert shown["maxBounceRate"] == 0.02
        assert shown["maxComplaintRate"] == 0.0005
        assert shown["rateMinVolume"] == 50
        assert shown["suspended"] is False
        assert shown["rates"]["volume"] == 0
        assert again.exit_code == 2
        assert "exists" in again.output

    async def test_show_reports_usage_and_suspension_and_unsuspend_releases_held_mail(
        self,
        posthouse: Cli,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        assert (await send(client, sender, ["a@example.com", "b@example.com"])).status_code == 202
        await set_workspace(
            sessionmaker, suspended_at=utcnow(), suspension_reason="high bounce rate"
        )
        await worker.run_until_idle()

        shown = await posthouse.json("workspace", "show", "acme", "--json")
        await posthouse("workspace", "update", "acme", "--unsuspend")
        await worker.run_until_idle()

        assert shown["usageThisMonth"] == 2
        assert shown["suspended"] is True
        assert shown["suspensionReason"] == "high bounce rate"
        assert len(smtp_server.received) == 2
        after = await posthouse.json("workspace", "show", "acme", "--json")
        assert after["suspended"] is False
        assert after["rates"]["volume"] == 2

    async def test_unknown_workspace_is_an_error(self, posthouse: Cli) -> None:
        result = await posthouse("workspace", "show", "nope", "--json", check=False)

        assert result.exit_code == 2
        assert "not found" in result.output


class TestSuppressionCommands:
    async def test_add_list_remove(self, posthouse: Cli) -> None:
        await posthouse("workspace", "create", "shop")
        await posthouse("suppression", "add", "Alice@EXAMPLE.com", "--workspace", "shop")
        await posthouse(
            "suppression", "add", "bob@example.com", "--workspace", "shop",
            "--reason", "complaint", "--expires-at", "2099-01-01T00:00",
        )  # fmt: skip

        listed = await posthouse.json("suppression", "list", "--workspace", "shop", "--json")
        complaints = await posthouse.json("suppression", "list", "--workspace", "shop",
                "--reason", "complaint", "--json",
            )  # fmt: skip
        await posthouse("suppression", "remove", "Alice@example.com", "--workspace", "shop")
        missing = await posthouse(
            "suppression", "remove", "Alice@example.com", "--workspace", "shop", check=False
        )
        after = await posthouse.json("suppression", "list", "--workspace", "shop", "--json")

        assert [(e["address"], e["reason"]) for e in listed] == [
            ("alice@example.com", "manual"),
            ("bob@example.com", "complaint"),
        ]
        assert all(e["createdAt"] for e in listed)
        assert [e["expiresAt"] for e in listed] == [None, "2099-01-01T00:00:00+00:00"]
        assert [e["address"] for e in complaints] == ["bob@example.com"]
        assert missing.exit_code == 2
        assert [e["address"] for e in after] == ["bob@example.com"]

    async def test_entries_scoped_to_a_use_case(self, posthouse: Cli) -> None:
        await posthouse("workspace", "create", "shop")
        await posthouse("domain", "add", "shop.example", "--workspace", "shop")
        news = await posthouse.json(
            "usecase", "add", "news", "--workspace", "shop", "--domain", "shop.example",
            "--type", "marketing", "--json",
        )  # fmt: skip
        await posthouse("suppression", "add", "alice@example.com", "--workspace", "shop")
        await posthouse(
            "suppression", "add", "alice@example.com", "--workspace", "shop",
            "--reason", "unsubscribe", "--use-case", news["id"],
        )  # fmt: skip
        listed = await posthouse.json("suppression", "list", "--workspace", "shop", "--json")
        plain = await posthouse("suppression", "list", "--workspace", "shop")
        bad = await posthouse(
            "suppression", "add", "bob@example.com", "--workspace", "shop",
            "--use-case", "news", check=False,
        )  # fmt: skip
        await posthouse(
            "suppression", "remove", "alice@example.com", "--workspace", "shop",
            "--use-case", news["id"],
        )  # fmt: skip
        after = await posthouse.json("suppression", "list", "--workspace", "shop", "--json")

        assert sorted((e["reason"], e["scope"], e["useCaseId"]) for e in listed) == [
            ("manual", "workspace", None),
            ("unsubscribe", "use_case", news["id"]),
        ]
        assert f"unsubscribe\tuse case {news['id']}\t" in plain.stdout
        assert "manual\tworkspace\t" in plain.stdout
        assert bad.exit_code != 0
        assert "use_case_id must be a UUID" in bad.output
        assert [(e["reason"], e["scope"]) for e in after] == [("manual", "workspace")]


class TestUseCaseCommands:
    async def test_engagement_defaults_are_set_changed_and_inherited(self, posthouse: Cli) -> None:
        await posthouse("workspace", "create", "shop")
        await posthouse("domain", "add", "shop.example", "--workspace", "shop")
        added = await posthouse.json(
            "usecase", "add", "news", "--workspace", "shop", "--domain", "shop.example",
            "--track-opens", "on", "--track-clicks", "html", "--json",
        )  # fmt: skip
        updated = await posthouse.json(
            "usecase", "update", "news", "--workspace", "shop", "--track-opens", "inherit",
            "--json",
        )  # fmt: skip
        by_id = await posthouse(
            "usecase", "update", added["id"], "--workspace", "shop", "--track-clicks", "both"
        )
        listed = await posthouse.json("usecase", "list", "--workspace", "shop", "--json")
        wrong = await posthouse(
            "usecase", "update", "news", "--workspace", "shop", "--track-opens", "yes",
            check=False,
        )  # fmt: skip
        unknown = await posthouse(
            "usecase", "update", "gone", "--workspace", "shop", "--track-opens", "on",
            check=False,
        )  # fmt: skip

        assert (added["track_opens"], added["track_clicks"]) == (True, "html")
        assert (updated["track_opens"], updated["track_clicks"]) == (None, "html")
        assert "track opens: inherit, track clicks: both" in by_id.stdout
        assert [(u["track_opens"], u["track_clicks"]) for u in listed] == [(None, "both")]
        assert wrong.exit_code != 0
        assert unknown.exit_code != 0
