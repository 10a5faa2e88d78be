"""Seed 004's history: list emails, list events, detail, body and attachments."""

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import Workspace as WorkspaceRow
from posthouse.events.types import EventType
from posthouse.history.downloads import Downloads
from tests.conftest import AUTH_CACHE_SECONDS
from tests.history.conftest import Workspace, form, make_workspace, record, send, send_native

Sessionmaker = async_sessionmaker[AsyncSession]


async def emails(client: httpx.AsyncClient, ws: Workspace, **params: Any) -> dict[str, Any]:
    response = await client.get(ws.base, headers=ws.key, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any], key: str = "emails") -> list[str]:
    return [item["id"] for item in page[key]]


async def detail(client: httpx.AsyncClient, ws: Workspace, email_id: str) -> dict[str, Any]:
    response = await client.get(f"{ws.base}/{email_id}", headers=ws.key)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestListEmails:
    async def test_each_recipient_copy_is_an_email_under_its_setup_and_use_case(
        self, client: httpx.AsyncClient, acme: Workspace
    ) -> None:
        through_use_case = await send(client, acme, "ada@example.com")
        reference = await send_native(client, acme, ["a@x.example", "b@x.example", "c@x.example"])

        by_setup = await emails(client, acme, setup_id=str(acme.setup_id))
        by_use_case = await emails(client, acme, use_case_id=str(acme.use_case_id))

        assert len(by_setup["emails"]) == 4
        assert by_setup["has_more"] is False
        assert by_setup["continuation_token"] is None
        assert ids(by_use_case) == [through_use_case["id"]]
        natives = [e for e in by_setup["emails"] if e["id"] != through_use_case["id"]]
        assert sorted(e["to_address"] for e in natives) == [
            "a@x.example",
            "b@x.example",
            "c@x.example",
        ]
        assert len({e["id"] for e in natives}) == 3
        assert reference  # one message, three emails
        [summary] = by_use_case["emails"]
        assert summary == {
            "id": through_use_case["id"],
            "ses_use_case_id": str(acme.use_case_id),
            "setup_id": str(acme.setup_id),
            "from_address": "no-reply@yourstore.example",
            "to_address": "ada@example.com",
            "subject": "Your receipt",
            "state": "sent",
            "sent_at": through_use_case["sent_at"],
            "has_attachment": False,
            "open_count": 0,
            "click_count": 0,
        }
        assert all(e["ses_use_case_id"] is None for e in natives)

    async def test_filters(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        ada = await send(client, acme, "ada@example.com")
        bob = await send(client, acme, "bob@example.com")
        eve = await send(client, acme, "eve@example.com")
        await record(sessionmaker, bob["id"], EventType.DELIVERY)
        await record(sessionmaker, eve["id"], EventType.BOUNCE)
        scope = {"use_case_id": str(acme.use_case_id)}

        two = await emails(client, acme, **scope, to_address=["ada@example.com", "eve@example.com"])
        delivered_or_bounced = await emails(client, acme, **scope, state=["delivered", "bounced"])
        sent = await emails(client, acme, **scope, state="sent")
        bounced_by_setup = await emails(client, acme, setup_id=str(acme.setup_id), state="bounced")
        from_bob = await emails(client, acme, **scope, sent_after=bob["sent_at"])
        before_bob = await emails(client, acme, **scope, sent_before=bob["sent_at"])
        nothing = await emails(client, acme, setup_id=str(uuid.uuid4()))
        # Both scopes together: both apply.
        both = await emails(
            client, acme, **scope, setup_id=str(acme.setup_id), to_address="bob@example.com"
        )

        assert ids(two) == [eve["id"], ada["id"]]  # newest first
        assert ids(delivered_or_bounced) == [eve["id"], bob["id"]]
        assert [e["state"] for e in delivered_or_bounced["emails"]] == ["bounced", "delivered"]
        assert ids(sent) == [ada["id"]]
        assert ids(bounced_by_setup) == [eve["id"]]
        assert ids(from_bob) == [eve["id"], bob["id"]]  # inclusive
        assert ids(before_bob) == [ada["id"]]  # exclusive
        assert nothing["emails"] == []
        assert ids(both) == [bob["id"]]

    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"to_address": "ada@example.com"},
            {"use_case_id": "{uc}", "limit": 0},
            {"use_case_id": "{uc}", "limit": 201},
            {"use_case_id": "{uc}", "state": "lost"},
            {"use_case_id": "{uc}", "sent_after": "yesterday"},
            {"use_case_id": "{uc}", "to_address": "not an address"},
        ],
    )
    async def test_bad_queries_are_422(
        self, client: httpx.AsyncClient, acme: Workspace, params: dict[str, Any]
    ) -> None:
        params = {k: (str(acme.use_case_id) if v == "{uc}" else v) for k, v in params.items()}
        response = await client.get(acme.base, headers=acme.key, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"

    async def test_a_walk_sees_every_email_that_existed_once_while_new_ones_arrive(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        existing = [(await send(client, acme, f"r{i}@example.com"))["id"] for i in range(7)]
        scope = {"use_case_id": str(acme.use_case_id), "limit": 3}
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = await emails(
                client, acme, **scope, **({"continuation_token": token} if token else {})
            )
            seen += ids(page)
            pages += 1
            # New emails and state changes arrive during the walk.
            new = await send(client, acme, f"late{pages}@example.com")
            await record(sessionmaker, existing[-1 - pages], EventType.DELIVERY)
            assert new["id"] not in seen
            if not page["has_more"]:
                break
            token = page["continuation_token"]
        assert pages == 3
        assert sorted(seen) == sorted(existing)
        assert len(seen) == len(set(seen))

    async def test_a_token_is_bound_to_its_query(
        self, client: httpx.AsyncClient, acme: Workspace
    ) -> None:
        for i in range(3):
            await send(client, acme, f"r{i}@example.com")
        scope = {"use_case_id": str(acme.use_case_id)}
        first = await emails(client, acme, **scope, limit=1)
        token = first["continuation_token"]
        assert first["has_more"]
        assert token

        same = await client.get(
            acme.base, headers=acme.key, params={**scope, "limit": 1, "continuation_token": token}
        )
        other_filter = await client.get(
            acme.base,
            headers=acme.key,
            params={**scope, "state": "sent", "continuation_token": token},
        )
        other_scope = await client.get(
            acme.base,
            headers=acme.key,
            params={"setup_id": str(acme.setup_id), "continuation_token": token},
        )
        events = await client.get(
            f"{acme.base}/event", headers=acme.key, params={**scope, "continuation_token": token}
        )
        flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        tampered = [flipped, token.split(".")[0], "garbage", token + "x", "." + token]

        assert same.status_code == 200
        for response in (other_filter, other_scope, events):
            assert response.status_code == 422, response.text
        for bad in tampered:
            response = await client.get(
                acme.base, headers=acme.key, params={**scope, "continuation_token": bad}
            )
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["code"] == "invalid_request"

    async def test_another_workspaces_emails_are_never_listed(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        other = await make_workspace(sessionmaker, "globex")
        await send(client, other, "ada@example.com")
        await send_native(client, other, ["bob@example.com"])

        # globex's use case and setup ids, queried through acme's key and path
        by_use_case = await emails(client, acme, use_case_id=str(other.use_case_id))
        by_setup = await emails(client, acme, setup_id=str(other.setup_id))
        events = await client.get(
            f"{acme.base}/event", headers=acme.key, params={"setup_id": str(other.setup_id)}
        )

        assert by_use_case["emails"] == []
        assert by_setup["emails"] == []
        assert events.json()["events"] == []


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([], "sent"),
        ([EventType.DELIVERY_DELAY], "sent"),
        ([EventType.DELIVERY], "delivered"),
        ([EventType.REJECT], "rejected"),
        ([EventType.DELIVERY, EventType.BOUNCE], "bounced"),
        ([EventType.BOUNCE, EventType.DELIVERY], "bounced"),
        ([EventType.REJECT, EventType.BOUNCE], "bounced"),
        ([EventType.BOUNCE, EventType.REJECT], "bounced"),
        ([EventType.DELIVERY, EventType.COMPLAINT], "complained"),
        ([EventType.COMPLAINT, EventType.BOUNCE], "complained"),
        ([EventType.BOUNCE, EventType.COMPLAINT, EventType.DELIVERY], "complained"),
        ([EventType.DELIVERY, EventType.OPEN, EventType.CLICK], "delivered"),
    ],
)
async def test_state_precedence(
    client: httpx.AsyncClient,
    acme: Workspace,
    sessionmaker: Sessionmaker,
    events: list[EventType],
    state: str,
) -> None:
    sent = await send(client, acme)
    for kind in events:
        await record(sessionmaker, sent["id"], kind)

    assert (await detail(client, acme, sent["id"]))["state"] == state
    listed = await emails(client, acme, use_case_id=str(acme.use_case_id), state=state)
    assert ids(listed) == [sent["id"]]


class TestDetail:
    async def test_every_field(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        sent = await send(client, acme, files=[("r.pdf", b"%PDF", "application/pdf")])
        t0 = utcnow().replace(microsecond=0)
        at = [t0 + timedelta(seconds=i) for i in range(10)]
        await record(sessionmaker, sent["id"], EventType.DELIVERY_DELAY, at=at[0])
        await record(sessionmaker, sent["id"], EventType.DELIVERY_DELAY, at=at[1])
        await record(sessionmaker, sent["id"], EventType.DELIVERY, at=at[2])
        await record(sessionmaker, sent["id"], EventType.OPEN, at=at[3])
        await record(sessionmaker, sent["id"], EventType.OPEN, at=at[4], data={"machine": True})
        await record(sessionmaker, sent["id"], EventType.OPEN, at=at[5])
        await record(sessionmaker, sent["id"], EventType.CLICK, at=at[6])
        bounce = {"bounce_type": "Permanent", "bounce_subtype": "NoEmail", "class": "x"}
        await record(sessionmaker, sent["id"], EventType.BOUNCE, at=at[7], data=bounce)
        later = {"bounce_type": "Transient", "bounce_subtype": "MailboxFull"}
        await record(sessionmaker, sent["id"], EventType.BOUNCE, at=at[8], data=later)

        body = await detail(client, acme, sent["id"])

        def iso(t: datetime) -> str:
            return t.isoformat().replace("+00:00", "Z")

        assert body["id"] == sent["id"]
        assert body["message_id"] == sent["message_id"]
        assert body["email_type"] == "transactional"
        assert body["tier"] == "new"
        assert body["attachment_filenames"] == ["r.pdf"]
        assert body["has_attachment"] is True
        assert body["state"] == "bounced"
        assert body["delivered_at"] == iso(at[2])
        assert body["delivery_delay_at"] == iso(at[1])  # the most recent
        assert body["bounced_at"] == iso(at[7])  # the first
        assert (body["bounce_type"], body["bounce_subtype"]) == ("Permanent", "NoEmail")
        assert body["complained_at"] is None
        assert body["rejected_at"] is None
        assert (body["first_open_at"], body["last_open_at"], body["open_count"]) == (
            iso(at[3]),
            iso(at[5]),
            2,
        )
        assert (body["first_click_at"], body["last_click_at"], body["click_count"]) == (
            iso(at[6]),
            iso(at[6]),
            1,
        )
        assert body["updated_at"] >= body["sent_at"]
        listed = await emails(client, acme, use_case_id=str(acme.use_case_id))
        assert (listed["emails"][0]["open_count"], listed["emails"][0]["click_count"]) == (2, 1)

    async def test_a_bounce_without_a_classification_shows_nulls(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        sent = await send(client, acme)
        await record(sessionmaker, sent["id"], EventType.BOUNCE, data={"smtp_code": 550})
        body = await detail(client, acme, sent["id"])
        assert body["bounced_at"] is not None
        assert (body["bounce_type"], body["bounce_subtype"]) == (None, None)

    async def test_the_tier_is_the_workspaces_at_send_time(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        before = await send(client, acme)
        async with sessionmaker.begin() as session:
            await session.execute(
                update(WorkspaceRow)
                .where(WorkspaceRow.id == acme.id)
                .values(reputation_tier="at_risk")
            )
        await asyncio.sleep(AUTH_CACHE_SECONDS * 2)
        after = await send(client, acme)

        assert (await detail(client, acme, before["id"]))["tier"] == "new"
        assert (await detail(client, acme, after["id"]))["tier"] == "at_risk"

    async def test_a_marketing_use_case(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        from posthouse.usecases import service

        async with sessionmaker.begin() as session:
            use_case = await service.add_use_case(
                session,
                workspace_id=acme.id,
                name="news",
                domain="yourstore.example",
                type="marketing",
            )
        response = await client.post(f"{acme.base}/send", headers=acme.key, **form(use_case.id))
        assert response.status_code == 201
        assert (await detail(client, acme, response.json()["id"]))["email_type"] == "marketing"


class TestEvents:
    async def test_filters_and_fields(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        ada = await send(client, acme, "ada@example.com")
        bob = await send(client, acme, "bob@example.com")
        t0 = utcnow().replace(microsecond=0) - timedelta(minutes=5)
        await record(sessionmaker, ada["id"], EventType.DELIVERY, at=t0, key="a-delivery")
        await record(sessionmaker, bob["id"], EventType.DELIVERY, at=t0 + timedelta(seconds=1))
        await record(sessionmaker, ada["id"], EventType.OPEN, at=t0 + timedelta(seconds=2))
        # The same notification twice: one event.
        await record(sessionmaker, ada["id"], EventType.DELIVERY, at=t0, key="a-delivery")
        scope = {"use_case_id": str(acme.use_case_id)}

        async def listed(**params: Any) -> list[tuple[str, str]]:
            response = await client.get(
                f"{acme.base}/event", headers=acme.key, params={**scope, **params}
            )
            assert response.status_code == 200, response.text
            return [(e["email_id"], e["event_type"]) for e in response.json()["events"]]

        everything = await client.get(f"{acme.base}/event", headers=acme.key, params=scope)
        [first, *_] = everything.json()["events"]
        assert set(first) == {"id", "email_id", "event_type", "event_at", "received_at"}
        assert first["event_at"] == t0.isoformat().replace("+00:00", "Z")
        assert first["received_at"] >= first["event_at"]
        assert await listed() == [
            (ada["id"], "Delivery"),
            (bob["id"], "Delivery"),
            (ada["id"], "Open"),
        ]
        assert await listed(email_id=[ada["id"]]) == [(ada["id"], "Delivery"), (ada["id"], "Open")]
        assert await listed(email_id=[ada["id"], bob["id"]], event_type="Delivery") == [
            (ada["id"], "Delivery"),
            (bob["id"], "Delivery"),
        ]
        assert await listed(event_type=["Open", "Bounce"]) == [(ada["id"], "Open")]
        after = (t0 + timedelta(seconds=1)).isoformat()
        assert await listed(event_at_after=after) == [(bob["id"], "Delivery"), (ada["id"], "Open")]
        assert await listed(event_at_before=after) == [(ada["id"], "Delivery")]
        by_setup = await client.get(
            f"{acme.base}/event", headers=acme.key, params={"setup_id": str(acme.setup_id)}
        )
        assert len(by_setup.json()["events"]) == 3
        bad = await client.get(
            f"{acme.base}/event", headers=acme.key, params={**scope, "event_type": "Lost"}
        )
        assert bad.status_code == 422
        unscoped = await client.get(f"{acme.base}/event", headers=acme.key)
        assert unscoped.status_code == 422

    async def test_a_walk_sees_every_event_once_while_new_ones_arrive(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        sent = await send(client, acme)
        t0 = utcnow() - timedelta(hours=1)
        for i in range(7):
            await record(sessionmaker, sent["id"], EventType.OPEN, at=t0 + timedelta(seconds=i))
        scope = {"use_case_id": str(acme.use_case_id), "limit": 3}
        first = await client.get(f"{acme.base}/event", headers=acme.key, params=scope)
        existing = [e["id"] for e in first.json()["events"]]
        seen = list(existing)
        token = first.json()["continuation_token"]
        while token:
            # An event that happened earlier but arrives now, and one that happens now.
            await record(sessionmaker, sent["id"], EventType.CLICK, at=t0 - timedelta(minutes=1))
            await record(sessionmaker, sent["id"], EventType.CLICK)
            page = (
                await client.get(
                    f"{acme.base}/event",
                    headers=acme.key,
                    params={**scope, "continuation_token": token},
                )
            ).json()
            seen += [e["id"] for e in page["events"]]
            token = page["continuation_token"]
        opens = await client.get(
            f"{acme.base}/event",
            headers=acme.key,
            params={**scope, "event_type": "Open", "limit": 200},
        )
        assert len(seen) == len(set(seen))
        assert {e["id"] for e in opens.json()["events"]} <= set(seen)


class TestBodyAndAttachments:
    async def test_the_body_as_sent(self, client: httpx.AsyncClient, acme: Workspace) -> None:
        html = "<h1>Caf\u00e9</h1><p>Thanks \U0001f600</p>"
        sent = await send(client, acme, html=html)
        response = await client.get(f"{acme.base}/{sent['id']}/body", headers=acme.key)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.content.decode("utf-8") == html

    @pytest.mark.parametrize(
        ("filename", "disposition"),
        [
            ("invoice.pdf", 'attachment; filename="invoice.pdf"'),
            (
                "Rechnung M\u00e4rz \u20ac.pdf",
                'attachment; filename="Rechnung M_rz _.pdf";'
                " filename*=UTF-8''Rechnung%20M%C3%A4rz%20%E2%82%AC.pdf",
            ),
        ],
    )
    async def test_an_attachment_by_a_signed_redirect(
        self, client: httpx.AsyncClient, acme: Workspace, filename: str, disposition: str
    ) -> None:
        data = b"%PDF-1.4 the bytes"
        sent = await send(
            client,
            acme,
            files=[(filename, data, "application/pdf"), ("other.txt", b"o", "text/plain")],
        )

        response = await client.get(
            f"{acme.base}/{sent['id']}/attachment/{filename}", headers=acme.key
        )

        assert response.status_code == 307
        location = response.headers["location"]
        assert location.startswith("/v1/email-downloads/")
        download = await client.get(location)  # no credentials
        assert download.status_code == 200
        assert download.content == data
        assert download.headers["content-type"] == "application/pdf"
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-disposition"] == disposition

    async def test_unknown_names_expired_and_tampered_urls_are_404(
        self, client: httpx.AsyncClient, acme: Workspace, app: FastAPI
    ) -> None:
        sent = await send(client, acme, files=[("a.txt", b"a", "text/plain")])
        missing = await client.get(f"{acme.base}/{sent['id']}/attachment/b.txt", headers=acme.key)
        assert missing.status_code == 404
        location = (
            await client.get(f"{acme.base}/{sent['id']}/attachment/a.txt", headers=acme.key)
        ).headers["location"]
        token = location.rsplit("/", 1)[1]
        body, mac = token.split(".")
        changed = body[:-1] + ("A" if body[-1] != "A" else "B")
        for bad in (f"{changed}.{mac}", f"{body}.{mac[:-1]}", "x.y", "nothing"):
            response = await client.get(f"/v1/email-downloads/{bad}")
            assert response.status_code == 404, bad
            assert response.json()["error"]["code"] == "not_found"
        # Past its lifetime, the same URL names nothing.
        real: Downloads = app.state.downloads
        app.state.downloads = Downloads(
            "change-me-posthouse-development-secret", lifetime=300, clock=lambda: 10**10
        )
        try:
            expired = await client.get(location)
        finally:
            app.state.downloads = real
        assert expired.status_code == 404
        assert (await client.get(location)).status_code == 200
