"""Engagement through use cases (seed 004's door): their tracking defaults between the
message and the workspace, marketing mail always carrying one-click unsubscribe, and
unsubscribes scoped to the use case the mail went through, through the real app, the
worker, a real SMTP server and the inbound listener."""

from dataclasses import dataclass
from typing import Any

import dkim
import httpx
import pytest
from fastapi import FastAPI

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from posthouse.workspaces import service as workspaces
from tests.conftest import SenderTokens, make_sender, make_workspace_key, multipart
from tests.dns_server import DnsServer
from tests.domains.conftest import add_verified, txt_lookup
from tests.history.conftest import make_workspace
from tests.smtp_server import SmtpServer
from tests.tracking.conftest import (
    BODY,
    PUBLIC_URL,
    Sessionmaker,
    delivered_mailto,
    events_of,
    html_of,
    inbound_smtp,
    paths,
    received,
)

DOMAIN = "yourstore.example"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class Setup:
    workspace_id: str
    admin: dict[str, str]
    channel: dict[str, str]  # channel.send
    use_cases: dict[str, str]  # name -> id
    native: SenderTokens  # the native door's token pair for news@DOMAIN

    async def send(
        self, client: httpx.AsyncClient, use_case: str, to: str = "alice@example.com"
    ) -> httpx.Response:
        fields = [
            ("use_case_id", (None, self.use_cases[use_case])),
            ("to_address", (None, to)),
            ("subject", (None, "Hello")),
            ("body_html", (None, BODY)),
        ]
        return await client.post(
            f"/v1/{self.workspace_id}/email/send", headers=self.channel, files=fields
        )

    async def sent(
        self, client: httpx.AsyncClient, use_case: str, to: str = "alice@example.com"
    ) -> None:
        response = await self.send(client, use_case, to)
        assert response.status_code == 201, response.text

    async def send_native(self, client: httpx.AsyncClient, to: str) -> httpx.Response:
        payload = {"from": self.native.email, "to": [to], "subject": "Hi", "body": "<p>Hi</p>"}
        return await client.post(
            "/api/v1/emails", headers=self.native.headers, **multipart(payload)
        )


async def add_use_case(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/use-cases",
        headers=admin,
        json={"name": name, "domain": DOMAIN, "from": f"{name}@{DOMAIN}", **fields},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def setup(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, dns_server: DnsServer
) -> Setup:
    """A workspace with a verified, published domain, a marketing use case ``news`` and a
    transactional one ``receipts``, through the admin API."""
    admin = await make_workspace_key(sessionmaker)
    await add_verified(client, dns_server, admin, DOMAIN)
    news = await add_use_case(client, admin, "news", type="marketing")
    receipts = await add_use_case(client, admin, "receipts")
    workspace = await client.get("/api/v1/workspace", headers=admin)
    return Setup(
        workspace_id=workspace.json()["id"],
        admin=admin,
        channel=await make_workspace_key(sessionmaker, scopes="channel.send channel.view"),
        use_cases={"news": news["id"], "receipts": receipts["id"]},
        native=await make_sender(sessionmaker, f"hello@{DOMAIN}"),
    )


def unsubscribe_path(mail: Any) -> str:
    https = mail["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    assert https.startswith(f"{PUBLIC_URL}/u/")
    return str(https[len(PUBLIC_URL) :])


async def suppression_list(client: httpx.AsyncClient, setup: Setup) -> list[tuple[Any, ...]]:
    listed = await client.get("/api/v1/suppressions", headers=setup.admin)
    assert listed.status_code == 200, listed.text
    return [
        (s["address"], s["reason"], s["scope"], s["useCaseId"])
        for s in listed.json()["suppressions"]
    ]


class TestMarketingUseCases:
    async def test_every_copy_carries_one_click_unsubscribe_inside_the_dkim_signature(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        worker: Worker,
        smtp_server: SmtpServer,
        dns_server: DnsServer,
    ) -> None:
        await setup.sent(client, "news", "alice@example.com")
        await setup.sent(client, "receipts", "bob@example.com")
        await worker.run_until_idle()

        [news] = [m for m in smtp_server.received if "alice@example.com" in m.rcpt_tos]
        message = news.message()
        unsubscribe_path(message)
        assert message["List-Unsubscribe"].split(",")[1].strip().startswith("<mailto:u-")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert dkim.verify(news.data, dnsfunc=txt_lookup(dns_server))
        signature = dkim.util.parse_tag_value(dkim.rfc822_parse(news.data)[0][0][1])
        signed = {name.strip() for name in signature[b"h"].split(b":")}
        assert {b"list-unsubscribe", b"list-unsubscribe-post"} <= signed
        # Transactional mail is private by default: no header, no tracking.
        receipt = received(smtp_server, "bob@example.com")
        assert receipt["List-Unsubscribe"] is None
        assert paths(html_of(receipt), "t/o") == paths(html_of(receipt), "t/c") == []


class TestEngagementDefaults:
    async def test_the_use_case_decides_unless_it_inherits_from_the_workspace(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        # The workspace tracks opens; receipts turns them off and tracks HTML clicks;
        # "alerts" says nothing, so it gets the workspace's.
        async with sessionmaker.begin() as session:
            await workspaces.update(
                session, name="acme", changes=workspaces.WorkspaceChanges(track_opens=True)
            )
        changed = await client.patch(
            f"/api/v1/use-cases/{setup.use_cases['receipts']}",
            headers=setup.admin,
            json={"track_opens": False, "track_clicks": "html"},
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["track_opens"], changed.json()["track_clicks"]) == (False, "html")
        alerts = await add_use_case(client, setup.admin, "alerts")
        assert (alerts["track_opens"], alerts["track_clicks"]) == (None, None)
        setup.use_cases["alerts"] = alerts["id"]

        await setup.sent(client, "receipts", "alice@example.com")
        await setup.sent(client, "alerts", "bob@example.com")
        await worker.run_until_idle()

        receipt = html_of(received(smtp_server, "alice@example.com"))
        alert = html_of(received(smtp_server, "bob@example.com"))
        assert paths(receipt, "t/o") == []
        assert len(paths(receipt, "t/c")) == 2  # the two web links, not the mailto:
        assert len(paths(alert, "t/o")) == 1
        assert paths(alert, "t/c") == []

    async def test_null_goes_back_to_the_workspace_and_bad_values_are_refused(
        self, client: httpx.AsyncClient, setup: Setup
    ) -> None:
        path = f"/api/v1/use-cases/{setup.use_cases['receipts']}"
        await client.patch(path, headers=setup.admin, json={"track_opens": True})

        reset = await client.patch(path, headers=setup.admin, json={"track_opens": None})
        clicks_only = await client.patch(path, headers=setup.admin, json={"track_clicks": "both"})
        bad_mode = await client.patch(path, headers=setup.admin, json={"track_clicks": "all"})
        bad_flag = await client.patch(path, headers=setup.admin, json={"track_opens": "yes"})
        unknown = await client.patch(
            "/api/v1/use-cases/00000000-0000-0000-0000-000000000001",
            headers=setup.admin,
            json={"track_opens": True},
        )

        assert reset.status_code == 200
        assert reset.json()["track_opens"] is None
        assert (clicks_only.json()["track_opens"], clicks_only.json()["track_clicks"]) == (
            None,
            "both",
        )
        assert bad_mode.status_code == 400
        assert "must be one of none, html, text, both" in bad_mode.json()["message"]
        assert bad_flag.status_code == 400
        assert unknown.status_code == 404
        listed = await client.get("/api/v1/use-cases", headers=setup.admin)
        [receipts] = [u for u in listed.json() if u["name"] == "receipts"]
        assert (receipts["track_opens"], receipts["track_clicks"]) == (None, "both")


class TestScopedUnsubscribe:
    async def test_an_unsubscribe_stops_that_use_cases_mail_only(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        await setup.sent(client, "news")
        await worker.run_until_idle()

        posted = await client.post(
            unsubscribe_path(received(smtp_server, "alice@example.com")), data=ONE_CLICK
        )

        assert posted.status_code == 200
        news = setup.use_cases["news"]
        assert await suppression_list(client, setup) == [
            ("alice@example.com", "unsubscribe", "use_case", news)
        ]
        [event] = await events_of(sessionmaker, "Unsubscribe")
        assert (event.data["scope"], event.data["use_case_id"]) == ("use_case", news)
        refused = await setup.send(client, "news")
        assert refused.status_code == 422
        assert (await setup.send(client, "receipts")).status_code == 201
        assert (await setup.send_native(client, "alice@example.com")).status_code == 202
        shown = await client.get(
            "/api/v1/suppressions/alice@example.com",
            headers=setup.admin,
            params={"useCaseId": news},
        )
        assert shown.json()["scope"] == "use_case"
        workspace_wide = await client.get(
            "/api/v1/suppressions/alice@example.com", headers=setup.admin
        )
        assert workspace_wide.status_code == 404

    async def test_a_workspace_entry_stops_everything_and_the_worker_checks_the_scope_again(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: Sessionmaker,
    ) -> None:
        # Queued before the entries exist; the worker checks again at send time.
        await setup.sent(client, "news", "alice@example.com")
        await setup.sent(client, "receipts", "alice@example.com")
        await setup.sent(client, "news", "bob@example.com")
        await setup.sent(client, "receipts", "bob@example.com")
        news = setup.use_cases["news"]
        for entry in (
            {"address": "alice@example.com", "reason": "unsubscribe", "useCaseId": news},
            {"address": "bob@example.com"},
        ):
            added = await client.post("/api/v1/suppressions", headers=setup.admin, json=entry)
            assert added.status_code == 201, added.text

        await worker.run_until_idle()

        delivered = sorted(
            (m.rcpt_tos[0], m.message()["From"].split("@")[0]) for m in smtp_server.received
        )
        assert delivered == [("alice@example.com", "receipts")]
        rejected = await events_of(sessionmaker, "Reject")
        assert len(rejected) == 3
        for use_case in ("news", "receipts"):
            assert (await setup.send(client, use_case, "bob@example.com")).status_code == 422
        assert (await setup.send_native(client, "bob@example.com")).status_code == 422
        assert sorted(await suppression_list(client, setup)) == [
            ("alice@example.com", "unsubscribe", "use_case", news),
            ("bob@example.com", "manual", "workspace", None),
        ]

    async def test_entries_for_the_workspace_and_a_use_case_are_separate(
        self, client: httpx.AsyncClient, setup: Setup, sessionmaker: Sessionmaker
    ) -> None:
        news = setup.use_cases["news"]
        for entry in (
            {"address": "carol@example.com"},
            {"address": "carol@example.com", "useCaseId": news},
        ):
            assert (
                await client.post("/api/v1/suppressions", headers=setup.admin, json=entry)
            ).status_code == 201
        others = (await make_workspace(sessionmaker, "other")).use_case_id

        removed = await client.delete(
            "/api/v1/suppressions/carol@example.com",
            headers=setup.admin,
            params={"useCaseId": news},
        )
        again = await client.delete(
            "/api/v1/suppressions/carol@example.com",
            headers=setup.admin,
            params={"useCaseId": news},
        )
        bad = await client.post(
            "/api/v1/suppressions",
            headers=setup.admin,
            json={"address": "dan@example.com", "useCaseId": "not-a-uuid"},
        )
        not_ours = await client.post(
            "/api/v1/suppressions",
            headers=setup.admin,
            json={"address": "dan@example.com", "useCaseId": str(others)},
        )

        assert removed.status_code == 204
        assert again.status_code == 404
        assert bad.status_code == 400
        assert not_ours.status_code == 404  # another workspace's use case: as if unknown
        assert await suppression_list(client, setup) == [
            ("carol@example.com", "manual", "workspace", None)
        ]


class TestMailtoScope:
    @pytest.fixture
    def app(self, embedded_app: FastAPI) -> FastAPI:
        return embedded_app

    async def test_mail_to_the_mailto_address_scopes_like_the_post(
        self,
        client: httpx.AsyncClient,
        setup: Setup,
        smtp_server: SmtpServer,
        settings: Settings,
    ) -> None:
        await setup.sent(client, "news")
        mailto = await delivered_mailto(smtp_server)

        async with inbound_smtp(settings) as smtp:
            await smtp.sendmail("alice@example.com", [mailto], b"Subject: stop\r\n\r\nstop\r\n")

        assert await suppression_list(client, setup) == [
            ("alice@example.com", "unsubscribe", "use_case", setup.use_cases["news"])
        ]
        assert (await setup.send(client, "news")).status_code == 422
        assert (await setup.send(client, "receipts")).status_code == 201
