"""The admin API for templates: versions, publishing, deleting, rendering without sending."""

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import make_workspace_key

Sessionmaker = async_sessionmaker[AsyncSession]
TEMPLATE_ID = re.compile(r"^tpl_[0-9A-HJKMNP-TV-Z]{26}$")
WELCOME = {
    "name": "welcome",
    "subject": "Welcome, {{ name }}",
    "html": "<p>Hello {{ name }}, your code is {{ code }}</p>",
}


@pytest.fixture
async def admin(sessionmaker: Sessionmaker) -> dict[str, str]:
    return await make_workspace_key(sessionmaker)


async def add(client: httpx.AsyncClient, admin: dict[str, str], **changes: object) -> dict:
    response = await client.post("/api/v1/templates", headers=admin, json={**WELCOME, **changes})
    assert response.status_code == 201, response.text
    return response.json()


class TestTemplateApi:
    async def test_add_gives_an_id_a_number_and_a_published_first_version(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        first = await add(client, admin)
        second = await add(client, admin, name="receipt")

        assert TEMPLATE_ID.match(first["id"])
        assert (first["number"], second["number"]) == (1, 2)
        assert (first["version"], first["publishedVersion"], first["versions"]) == (1, 1, [1])
        assert first["html"] == WELCOME["html"]
        listed = await client.get("/api/v1/templates", headers=admin)
        assert [(t["number"], t["name"]) for t in listed.json()] == [(1, "welcome"), (2, "receipt")]

    async def test_either_the_id_or_the_number_finds_it(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)

        by_id = await client.get(f"/api/v1/templates/{added['id']}", headers=admin)
        by_number = await client.get("/api/v1/templates/1", headers=admin)

        assert by_id.json() == by_number.json() == added

    async def test_an_update_is_a_new_version_published_only_when_asked(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)
        url = f"/api/v1/templates/{added['id']}"

        draft = await client.patch(url, headers=admin, json={"subject": "Hi {{ name }}"})
        shown = await client.get(url, headers=admin)
        published = await client.post(f"{url}/publish", headers=admin, json={})
        old = await client.get(url, headers=admin, params={"version": 1})

        assert draft.status_code == 200, draft.text
        assert (draft.json()["version"], draft.json()["publishedVersion"]) == (2, 1)
        assert draft.json()["html"] == WELCOME["html"]  # parts not given are carried over
        assert shown.json()["subject"] == "Welcome, {{ name }}"  # still version 1
        assert (published.json()["publishedVersion"], published.json()["subject"]) == (
            2,
            "Hi {{ name }}",
        )
        assert old.json()["subject"] == "Welcome, {{ name }}"  # versions never change
        assert old.json()["versions"] == [1, 2]

    async def test_publish_can_go_back_to_an_earlier_version(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)
        url = f"/api/v1/templates/{added['id']}"
        await client.patch(url, headers=admin, json={"html": "<p>v2</p>", "publish": True})

        back = await client.post(f"{url}/publish", headers=admin, json={"version": 1})
        missing = await client.post(f"{url}/publish", headers=admin, json={"version": 9})

        assert (back.json()["publishedVersion"], back.json()["html"]) == (1, WELCOME["html"])
        assert missing.status_code == 404

    async def test_a_template_that_does_not_compile_is_refused_naming_part_and_line(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.post(
            "/api/v1/templates",
            headers=admin,
            json={"name": "broken", "html": "<p>\n{% if x %}\n{{ x }\n</p>"},
        )

        assert response.status_code == 422
        assert response.json()["status"] == 422
        assert response.json()["message"].startswith("html: line 3: ")
        assert (await client.get("/api/v1/templates", headers=admin)).json() == []

    async def test_an_update_that_does_not_compile_makes_no_version(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)
        url = f"/api/v1/templates/{added['id']}"

        response = await client.patch(url, headers=admin, json={"text": "{{ ''.__class__ }}"})

        assert response.status_code == 422
        assert "text: line 1" in response.json()["message"]
        assert (await client.get(url, headers=admin)).json()["versions"] == [1]

    @pytest.mark.parametrize(
        "payload",
        [
            {"name": "no body", "subject": "x"},
            {"name": "", "html": "<p>x</p>"},
            {"name": "two lines", "subject": "a\nb", "html": "<p>x</p>"},
        ],
    )
    async def test_what_could_never_be_sent_is_refused(
        self, client: httpx.AsyncClient, admin: dict[str, str], payload: dict[str, str]
    ) -> None:
        response = await client.post("/api/v1/templates", headers=admin, json=payload)

        assert response.status_code in (400, 422)
        assert set(response.json()) == {"status", "message"}

    async def test_a_deleted_template_is_gone_and_its_number_not_reused(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)

        deleted = await client.delete(f"/api/v1/templates/{added['id']}", headers=admin)
        shown = await client.get(f"/api/v1/templates/{added['id']}", headers=admin)
        again = await add(client, admin)

        assert deleted.status_code == 204
        assert shown.status_code == 404
        assert again["number"] == 2

    async def test_another_workspaces_template_is_a_404_like_a_missing_one(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)
        other = await make_workspace_key(sessionmaker, "rival")

        theirs = await client.get(f"/api/v1/templates/{added['id']}", headers=other)
        by_number = await client.get("/api/v1/templates/1", headers=other)
        missing = await client.get(
            "/api/v1/templates/tpl_01JAAAAAAAAAAAAAAAAAAAAAAA", headers=admin
        )
        nonsense = await client.get("/api/v1/templates/nonsense", headers=admin)
        rendered = await client.post(
            f"/api/v1/templates/{added['id']}/render", headers=other, json={}
        )

        assert {r.status_code for r in (theirs, by_number, missing, nonsense, rendered)} == {404}
        # The same answer as for a template that does not exist.
        assert theirs.json() == {"status": 404, "message": f"template {added['id']} not found"}
        assert missing.json() == {
            "status": 404,
            "message": "template tpl_01JAAAAAAAAAAAAAAAAAAAAAAA not found",
        }

    async def test_a_send_key_cannot_manage_templates(
        self, client: httpx.AsyncClient, sessionmaker: Sessionmaker
    ) -> None:
        sender_key = await make_workspace_key(sessionmaker, scopes="send")

        response = await client.post("/api/v1/templates", headers=sender_key, json=WELCOME)
        anonymous = await client.get("/api/v1/templates")

        assert response.status_code == 403
        assert anonymous.status_code == 401


class TestRenderEndpoint:
    async def test_renders_without_sending_and_reports_what_is_missing(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)

        response = await client.post(
            f"/api/v1/templates/{added['id']}/render",
            headers=admin,
            json={"variables": {"name": "<b>Ada</b>"}},
        )

        assert response.status_code == 200, response.text
        assert response.json() == {
            "subject": "Welcome, <b>Ada</b>",
            "html": "<p>Hello &lt;b&gt;Ada&lt;/b&gt;, your code is </p>",
            "text": "Hello <b>Ada</b>, your code is\n",  # derived from the HTML
            "missing": ["code"],
        }

    async def test_renders_the_published_version_unless_asked(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(client, admin)
        url = f"/api/v1/templates/{added['id']}"
        await client.patch(url, headers=admin, json={"html": "<p>draft {{ name }}</p>"})

        published = await client.post(f"{url}/render", headers=admin, json={"variables": {}})
        draft = await client.post(
            f"{url}/render", headers=admin, json={"variables": {"name": "x"}, "version": 2}
        )

        assert published.json()["missing"] == ["code", "name"]
        assert (draft.json()["html"], draft.json()["missing"]) == ("<p>draft x</p>", [])

    async def test_a_render_that_fails_is_a_400_not_a_500(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        added = await add(
            client, admin, html="{% for i in range(100000) %}{{ s * 1000 }}{% endfor %}"
        )

        response = await client.post(
            f"/api/v1/templates/{added['id']}/render",
            headers=admin,
            json={"variables": {"s": "x", "name": "n", "code": 1}},
        )

        assert response.status_code == 400
        assert response.json()["message"].startswith("html: the template produced over")
