"""Use cases, workspace ids and seed 004 keys: the CLI as an operator runs it, and the
admin API."""

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.cli.test_cli import run
from tests.conftest import make_workspace_key
from tests.history.conftest import form

Sessionmaker = async_sessionmaker[AsyncSession]


async def test_the_cli_sets_up_a_use_case_and_a_key_that_sends_and_reads(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    def posthouse(*args: str) -> Any:
        result = run(*args, "--json", database_url=database_url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    workspace = posthouse("workspace", "create", "shop")
    domain = posthouse("domain", "add", "yourstore.example", "--workspace", "shop")
    shown = posthouse("workspace", "show", "shop")
    domain_shown = posthouse("domain", "show", "yourstore.example")
    use_case = posthouse(
        "usecase", "add", "receipts", "--workspace", "shop", "--domain", "yourstore.example"
    )
    marketing = posthouse(
        "usecase", "add", "news", "--workspace", "shop", "--domain", "yourstore.example",
        "--type", "marketing", "--from", "news@yourstore.example",
    )  # fmt: skip
    listed = posthouse("usecase", "list", "--workspace", "shop")
    key = posthouse("key", "create", "--workspace", "shop", "--scopes", "channel.send channel.view")

    workspace_id = workspace["id"]
    assert uuid.UUID(workspace_id)
    assert shown["id"] == workspace_id
    assert uuid.UUID(domain["id"])
    assert domain_shown["id"] == domain["id"]
    assert sorted(use_case) == [
        "from",
        "id",
        "name",
        "setup_id",
        "track_clicks",
        "track_opens",
        "type",
        "workspace_id",
    ]
    assert (use_case["name"], use_case["type"], use_case["from"]) == (
        "receipts",
        "transactional",
        "no-reply@yourstore.example",
    )
    assert (use_case["setup_id"], use_case["workspace_id"]) == (domain["id"], workspace_id)
    assert (marketing["type"], marketing["from"]) == ("marketing", "news@yourstore.example")
    assert listed == [marketing, use_case]  # by name
    assert sorted(key) == ["key", "scopes", "workspace", "workspace_id"]
    assert (key["workspace"], key["workspace_id"], key["scopes"]) == (
        "shop",
        workspace_id,
        "channel.send channel.view",
    )
    headers = {"Authorization": f"Bearer {key['key']}"}
    sent = await client.post(
        f"/v1/{workspace_id}/email/send", headers=headers, **form(use_case["id"])
    )
    assert sent.status_code == 201, sent.text
    listed_emails = await client.get(
        f"/v1/{workspace_id}/email", headers=headers, params={"setup_id": domain["id"]}
    )
    assert [e["id"] for e in listed_emails.json()["emails"]] == [sent.json()["id"]]


def test_the_cli_refuses_unknown_scopes_and_domains(database_url: str, tmp_path: Path) -> None:
    run("workspace", "create", "shop", database_url=database_url, cwd=tmp_path)
    bad_scope = run(
        "key", "create", "--workspace", "shop", "--scopes", "channel.delete",
        database_url=database_url, cwd=tmp_path,
    )  # fmt: skip
    bad_domain = run(
        "usecase", "add", "x", "--workspace", "shop", "--domain", "nowhere.example",
        database_url=database_url, cwd=tmp_path,
    )  # fmt: skip
    assert bad_scope.returncode == 2
    assert "scopes" in bad_scope.stderr
    assert bad_domain.returncode == 2
    assert "not found" in bad_domain.stderr


async def test_the_admin_api(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    admin = await make_workspace_key(sessionmaker, "shop", scopes="admin")
    other = await make_workspace_key(sessionmaker, "globex", scopes="admin")
    sender_only = await make_workspace_key(sessionmaker, "shop", scopes="channel.send")
    domain = await client.post("/api/v1/domains", headers=admin, json={"name": "yourstore.example"})
    workspace = await client.get("/api/v1/workspace", headers=admin)
    created = await client.post(
        "/api/v1/use-cases",
        headers=admin,
        json={"name": "receipts", "domain": "yourstore.example"},
    )
    again = await client.post(
        "/api/v1/use-cases", headers=admin, json={"name": "receipts", "domain": "yourstore.example"}
    )
    elsewhere = await client.post(
        "/api/v1/use-cases", headers=other, json={"name": "r", "domain": "yourstore.example"}
    )
    bad_type = await client.post(
        "/api/v1/use-cases",
        headers=admin,
        json={"name": "n", "domain": "yourstore.example", "type": "sms"},
    )
    listed = await client.get("/api/v1/use-cases", headers=admin)
    key = await client.post(
        "/api/v1/keys", headers=admin, json={"scopes": "channel.view", "name": "dashboard"}
    )
    forbidden = await client.get("/api/v1/use-cases", headers=sender_only)

    assert domain.status_code == 201
    assert workspace.status_code == 200
    assert workspace.json()["name"] == "shop"
    assert workspace.json()["tier"] == "new"
    assert created.status_code == 201, created.text
    assert created.json()["setup_id"] == domain.json()["id"]
    assert created.json()["workspace_id"] == workspace.json()["id"]
    assert again.status_code == 409
    assert elsewhere.status_code == 404  # globex has no such domain
    assert bad_type.status_code == 400
    assert listed.json() == [created.json()]
    assert key.status_code == 201
    assert key.json()["scopes"] == "channel.view"
    assert key.json()["workspace_id"] == workspace.json()["id"]
    assert forbidden.status_code == 403
    view = {"Authorization": f"Bearer {key.json()['key']}"}
    emails = await client.get(
        f"/v1/{workspace.json()['id']}/email",
        headers=view,
        params={"use_case_id": created.json()["id"]},
    )
    assert emails.status_code == 200
    assert emails.json()["emails"] == []
