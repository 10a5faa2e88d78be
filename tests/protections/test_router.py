"""The suppression admin API: list with cursor paging and reason filter, add, show,
remove; another workspace's entries look like missing ones."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import SenderTokens, make_workspace_key
from tests.protections.support import send

URL = "/api/v1/suppressions"


class TestSuppressionApi:
    async def test_add_then_sends_leave_the_address_out(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        admin = await make_workspace_key(sessionmaker)

        added = await client.post(
            URL, headers=admin, json={"address": "Alice@EXAMPLE.com", "reason": "unsubscribe"}
        )

        assert added.status_code == 201
        body = added.json()
        # Stored in the canonical form every comparison uses (docs/addresses.md).
        assert (body["address"], body["reason"]) == ("alice@example.com", "unsubscribe")
        assert body["createdBy"]
        refused = await send(client, sender, ["Alice@example.com"])
        assert refused.status_code == 422

    async def test_list_pages_with_a_cursor_and_filters_by_reason(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        for i in range(5):
            reason = "manual" if i % 2 else "complaint"
            await client.post(
                URL, headers=admin, json={"address": f"u{i}@x.example", "reason": reason}
            )

        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(URL, headers=admin, params=params)).json()
            seen += [e["address"] for e in page["suppressions"]]
            pages += 1
            cursor = page["nextCursor"]
            if cursor is None:
                break
        complaints = (await client.get(URL, headers=admin, params={"reason": "complaint"})).json()

        assert seen == [f"u{i}@x.example" for i in range(5)]
        assert pages == 3
        assert [e["address"] for e in complaints["suppressions"]] == [
            "u0@x.example",
            "u2@x.example",
            "u4@x.example",
        ]

    async def test_remove_lets_the_address_be_sent_to_again(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        await client.post(URL, headers=admin, json={"address": "alice@example.com"})

        removed = await client.delete(f"{URL}/alice@example.com", headers=admin)
        again = await client.delete(f"{URL}/alice@example.com", headers=admin)

        assert removed.status_code == 204
        assert again.status_code == 404
        assert again.json()["status"] == 404
        assert (await send(client, sender, ["alice@example.com"])).status_code == 202

    async def test_another_workspaces_entry_is_a_404_like_a_missing_one(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        theirs = await make_workspace_key(sessionmaker, workspace="other")
        mine = await make_workspace_key(sessionmaker)
        await client.post(URL, headers=theirs, json={"address": "alice@example.com"})

        shown = await client.get(f"{URL}/alice@example.com", headers=mine)
        missing = await client.get(f"{URL}/nobody@example.com", headers=mine)
        removed = await client.delete(f"{URL}/alice@example.com", headers=mine)
        listed = (await client.get(URL, headers=mine)).json()

        assert shown.status_code == missing.status_code == removed.status_code == 404
        assert shown.json()["message"].replace("alice", "X") == missing.json()["message"].replace(
            "nobody", "X"
        )
        assert listed == {"suppressions": [], "nextCursor": None}
        kept = await client.get(f"{URL}/alice@example.com", headers=theirs)
        assert kept.status_code == 200

    async def test_bad_input_is_a_400_and_no_key_a_401(
        self, client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        admin = await make_workspace_key(sessionmaker)
        send_only = await make_workspace_key(sessionmaker, scopes="send")

        bad_reason = await client.post(
            URL, headers=admin, json={"address": "a@x.example", "reason": "spite"}
        )
        bad_address = await client.post(URL, headers=admin, json={"address": "a@\r\nx.example"})
        bad_cursor = await client.get(URL, headers=admin, params={"cursor": "nope"})
        anonymous = await client.get(URL)
        forbidden = await client.get(URL, headers=send_only)

        assert [bad_reason.status_code, bad_address.status_code, bad_cursor.status_code] == [
            400
        ] * 3
        assert anonymous.status_code == 401
        assert forbidden.status_code == 403
