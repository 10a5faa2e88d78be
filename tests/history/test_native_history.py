"""The native history: GET /api/v1/emails, the detail's recipients, and the polling feed
GET /api/v1/events, which hands out every event exactly once even when transactions
commit out of order."""

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import Delivery
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from tests.conftest import PG_URL, make_sender, multipart
from tests.history.conftest import Workspace, record, send_native

Sessionmaker = async_sessionmaker[AsyncSession]


async def listed(client: httpx.AsyncClient, ws: Workspace, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/emails", headers=ws.sender.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def references(page: dict[str, Any]) -> list[str]:
    return [e["referenceId"] for e in page["emails"]]


async def copies(sessionmaker: Sessionmaker, reference: str) -> dict[str, uuid.UUID]:
    from posthouse.sending.ids import parse_reference_id

    async with sessionmaker() as session:
        rows = await session.execute(
            select(Delivery.recipient, Delivery.id).where(
                Delivery.message_id == parse_reference_id(reference)
            )
        )
        return {row.recipient: row.id for row in rows}


class TestListEmails:
    async def test_filters_and_the_senders_scope(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        invoice = await send_native(
            client, acme, ["ada@example.com", "bob@example.com"], "Invoice 100%"
        )
        welcome = await send_native(client, acme, ["eve@example.com"], "Welcome")
        reminder = await send_native(client, acme, ["bob@example.com"], "Invoice reminder")
        await record(
            sessionmaker, (await copies(sessionmaker, invoice))["bob@example.com"], EventType.BOUNCE
        )
        # Another sender of the same workspace: its emails are not this sender's.
        other = await make_sender(sessionmaker, "billing@yourstore.example")
        response = await client.post(
            "/api/v1/emails",
            headers=other.headers,
            **multipart(
                {"from": other.email, "to": ["ada@example.com"], "subject": "Invoice", "body": "x"}
            ),
        )
        assert response.status_code == 202

        everything = await listed(client, acme)
        by_recipient = await listed(client, acme, recipient=["ada@example.com", "eve@example.com"])
        bounced = await listed(client, acme, state="bounced")
        by_subject = await listed(client, acme, subject="INVOICE")
        percent = await listed(client, acme, subject="100%")
        underscore = await listed(client, acme, subject="_")
        after = await listed(client, acme, sentAfter=everything["emails"][1]["createdAt"])
        before = await listed(client, acme, sentBefore=everything["emails"][1]["createdAt"])

        assert references(everything) == [reminder, welcome, invoice]
        assert everything["hasMore"] is False
        first = everything["emails"][2]
        assert first["subject"] == "Invoice 100%"
        assert first["recipients"] == [
            {"email": "ada@example.com", "type": "to", "status": "queued", "state": "sent"},
            {"email": "bob@example.com", "type": "to", "status": "queued", "state": "bounced"},
        ]
        assert references(by_recipient) == [welcome, invoice]
        assert references(bounced) == [invoice]
        assert references(by_subject) == [reminder, invoice]
        assert references(percent) == [invoice]
        assert references(underscore) == []
        assert references(after) == [reminder, welcome]
        assert references(before) == [invoice]

    async def test_paging_walk_and_tokens(self, client: httpx.AsyncClient, acme: Workspace) -> None:
        existing = [await send_native(client, acme, [f"r{i}@example.com"]) for i in range(5)]
        seen: list[str] = []
        page = await listed(client, acme, limit=2)
        while True:
            seen += references(page)
            await send_native(client, acme, ["late@example.com"])
            if not page["hasMore"]:
                break
            page = await listed(client, acme, limit=2, continuationToken=page["continuationToken"])
        assert sorted(seen) == sorted(existing)
        assert len(seen) == len(set(seen))

        token = (await listed(client, acme, limit=1))["continuationToken"]
        for params in (
            {"continuationToken": token, "subject": "x"},
            {"continuationToken": token[::-1]},
            {"state": "gone"},
            {"limit": 500},
            {"recipient": "bad address"},
        ):
            response = await client.get(
                "/api/v1/emails", headers=acme.sender.headers, params=params
            )
            assert response.status_code == 400, (params, response.text)
            assert set(response.json()) == {"status", "message"}

    async def test_tokens_are_required(self, client: httpx.AsyncClient) -> None:
        for path in ("/api/v1/emails", "/api/v1/events"):
            response = await client.get(path)
            assert response.status_code == 401


async def test_the_detail_shows_each_recipients_state_counters_and_timeline(
    client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
) -> None:
    reference = await send_native(client, acme, ["ada@example.com", "bob@example.com"])
    ids = await copies(sessionmaker, reference)
    t0 = utcnow().replace(microsecond=0)
    from datetime import timedelta

    await record(sessionmaker, ids["ada@example.com"], EventType.DELIVERY, at=t0)
    await record(sessionmaker, ids["ada@example.com"], EventType.OPEN, at=t0 + timedelta(seconds=2))
    await record(
        sessionmaker,
        ids["ada@example.com"],
        EventType.OPEN,
        at=t0 + timedelta(seconds=1),
        data={"machine": True},
    )
    await record(
        sessionmaker, ids["ada@example.com"], EventType.CLICK, at=t0 + timedelta(seconds=3)
    )
    await record(sessionmaker, ids["bob@example.com"], EventType.COMPLAINT, at=t0)

    response = await client.get(f"/api/v1/emails/{reference}", headers=acme.sender.headers)

    assert response.status_code == 200, response.text
    recipients = {r["email"]: r for r in response.json()["recipients"]}
    ada, bob = recipients["ada@example.com"], recipients["bob@example.com"]
    assert (ada["state"], ada["openCount"], ada["clickCount"]) == ("delivered", 1, 1)
    assert [e["type"] for e in ada["events"]] == ["Delivery", "Open", "Open", "Click"]
    assert ada["events"][1]["data"] == {"machine": True}
    assert (bob["state"], bob["openCount"], bob["clickCount"]) == ("complained", 0, 0)
    assert [e["type"] for e in bob["events"]] == ["Complaint"]


async def poll(
    client: httpx.AsyncClient, ws: Workspace, cursor: str | None, limit: int = 100
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["after"] = cursor
    response = await client.get("/api/v1/events", headers=ws.sender.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestFeed:
    async def test_polling_hands_out_each_event_once_in_a_stable_order(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        reference = await send_native(client, acme, ["ada@example.com"])
        [delivery_id] = (await copies(sessionmaker, reference)).values()
        empty = await poll(client, acme, None)
        for kind in (EventType.DELIVERY, EventType.OPEN, EventType.CLICK):
            await record(sessionmaker, delivery_id, kind)
        await record(sessionmaker, delivery_id, EventType.OPEN, key="once")
        await record(sessionmaker, delivery_id, EventType.OPEN, key="once")
        other = await make_sender(sessionmaker, "billing@yourstore.example")
        response = await client.post(
            "/api/v1/emails",
            headers=other.headers,
            **multipart(
                {"from": other.email, "to": ["x@example.com"], "subject": "s", "body": "b"}
            ),
        )
        [other_delivery] = (await copies(sessionmaker, response.json()["referenceId"])).values()
        await record(sessionmaker, other_delivery, EventType.DELIVERY)

        first = await poll(client, acme, empty["cursor"], limit=3)
        second = await poll(client, acme, first["cursor"], limit=3)
        third = await poll(client, acme, second["cursor"])

        assert empty["events"] == []
        assert [e["type"] for e in first["events"]] == ["Delivery", "Open", "Click"]
        assert first["hasMore"] is True
        assert [e["type"] for e in second["events"]] == ["Open"]
        assert second["hasMore"] is False
        assert third["events"] == []
        assert third["cursor"] == second["cursor"]
        event = first["events"][0]
        assert (event["referenceId"], event["recipient"]) == (reference, "ada@example.com")
        assert set(event) == {
            "id",
            "referenceId",
            "recipient",
            "type",
            "eventAt",
            "receivedAt",
            "data",
        }
        again = await poll(client, acme, None)
        assert [e["id"] for e in again["events"]] == [
            e["id"] for e in first["events"] + second["events"]
        ]

    async def test_a_bad_cursor_is_400(self, client: httpx.AsyncClient, acme: Workspace) -> None:
        for cursor in ("nonsense", "eyJ9.abc"):
            response = await client.get(
                "/api/v1/events", headers=acme.sender.headers, params={"after": cursor}
            )
            assert response.status_code == 400

    @pytest.mark.skipif(not PG_URL, reason="SQLite has one writer at a time: no overlap")
    async def test_an_event_committed_after_a_later_one_is_not_skipped(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        reference = await send_native(client, acme, ["ada@example.com"])
        [delivery_id] = (await copies(sessionmaker, reference)).values()
        cursor = (await poll(client, acme, None))["cursor"]

        slow = sessionmaker()
        await slow.begin()
        await _ingest(slow, delivery_id, EventType.DELIVERY)  # stored first, not committed
        await record(sessionmaker, delivery_id, EventType.OPEN)  # stored and committed later
        during = await poll(client, acme, cursor)
        await slow.commit()
        await slow.close()
        after = await poll(client, acme, during["cursor"])

        # The later event waits until the earlier transaction has ended, then both come.
        assert during["events"] == []
        assert [e["type"] for e in after["events"]] == ["Delivery", "Open"]

    async def test_concurrent_writers_and_a_polling_client(
        self, client: httpx.AsyncClient, acme: Workspace, sessionmaker: Sessionmaker
    ) -> None:
        reference = await send_native(client, acme, ["ada@example.com"])
        [delivery_id] = (await copies(sessionmaker, reference)).values()
        rng = random.Random(16)
        done = asyncio.Event()
        written: list[str] = []

        async def writer(n: int) -> None:
            for i in range(8):
                async with sessionmaker() as session, session.begin():
                    key = f"w{n}-{i}"
                    await _ingest(session, delivery_id, EventType.OPEN, key=key)
                    # Hold the transaction open a while, so commits interleave.
                    await asyncio.sleep(rng.random() * 0.02)
                written.append(key)

        seen: list[str] = []

        async def poller() -> None:
            cursor = None
            while True:
                finished = done.is_set()
                page = await poll(client, acme, cursor, limit=5)
                seen.extend(e["data"]["key"] for e in page["events"])
                cursor = page["cursor"]
                if finished and not page["hasMore"] and not page["events"]:
                    return
                await asyncio.sleep(0.003)

        polling = asyncio.create_task(poller())
        await asyncio.gather(*(writer(n) for n in range(4)))
        done.set()
        await polling

        assert sorted(seen) == sorted(written)
        assert len(seen) == len(set(seen)) == 32


async def _ingest(
    session: AsyncSession, delivery_id: uuid.UUID, kind: EventType, key: str | None = None
) -> None:
    delivery = await session.get(Delivery, delivery_id)
    assert delivery is not None
    await events_service.ingest(
        session,
        [
            events_service.NewEvent(
                workspace_id=delivery.workspace_id,
                message_id=delivery.message_id,
                delivery_id=delivery_id,
                type=kind,
                occurred_at=utcnow(),
                dedupe_key=key or str(uuid.uuid4()),
                data={"key": key} if key else {},
            )
        ],
    )
