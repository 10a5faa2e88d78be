"""Seed 003: getMessageInfo finds the account's messages by the X-Unique-Id they were sent
with, one entry per recipient, with its opens and clicks one by one."""

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.models import Delivery
from posthouse.delivery.worker import Worker
from posthouse.events.types import EventType
from tests.dialects.sendclean.conftest import (
    MESSAGE_INFO_EXAMPLE,
    Account,
    make_account,
    with_account,
)
from tests.helpers import settle
from tests.history.conftest import record
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/120.0"


async def send(
    client: httpx.AsyncClient, account: Account, unique_id: str, *to: str, **extra: Any
) -> None:
    message = {
        "subject": f"About {unique_id}",
        "from_email": "message.from_email@example.com",
        "to": [{"email": address} for address in to],
        "html": "<p>Hello</p>",
        "headers": {"X-Unique-Id": unique_id},
        **extra,
    }
    response = await client.post(
        "/messages/sendMail", json={**account.credentials, "message": message}
    )
    assert response.status_code == 200, response.text


async def info(client: httpx.AsyncClient, account: Account, **body: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1.0/messages/getMessageInfo",
        json={**with_account(MESSAGE_INFO_EXAMPLE, account), **body},
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"status", "message_data"}
    assert response.json()["status"] == "success"
    data: list[dict[str, Any]] = response.json()["message_data"]
    return data


async def delivery_of(sessionmaker: Sessionmaker, recipient: str) -> Delivery:
    async with sessionmaker() as session:
        return (
            await session.scalars(select(Delivery).where(Delivery.recipient == recipient))
        ).one()


def ms(year: int, second: int) -> datetime:
    return datetime(year, 1, 1, 0, 0, second, tzinfo=UTC)


async def test_the_documents_request_lists_each_recipient_with_opens_and_clicks(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
) -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    await send(client, account, "test", "ada@example.com", "bob@example.com")
    await send(client, account, "other", "carl@example.com")
    await settle(worker, sessionmaker)
    ada = await delivery_of(sessionmaker, "ada@example.com")
    for second, kind in ((1, EventType.OPEN), (2, EventType.OPEN), (3, EventType.CLICK)):
        await record(
            sessionmaker,
            ada.id,
            kind,
            at=ms(2030, second),
            data={"ip": f"198.51.100.{second}", "user_agent": UA},
        )
    # A machine's open (a mail scanner) is not the recipient's.
    await record(sessionmaker, ada.id, EventType.OPEN, data={"ip": "x", "machine": True})

    data = await info(client, account)

    assert [entry["email"] for entry in data] == ["ada@example.com", "bob@example.com"]
    first = data[0]
    assert list(first) == [
        "subject", "sender", "email", "sendFrom", "mailSize", "attchSize", "status", "time",
        "open", "openData", "clickData", "click",
    ]  # fmt: skip
    assert first["subject"] == "About test"
    assert first["sender"] == "message.from_email@example.com"
    assert first["sendFrom"] == "0.0.0.0"
    assert first["mailSize"] == len("<p>Hello</p>")
    assert first["attchSize"] == 0
    assert first["status"] == "delivered"
    assert before - 1000 <= first["time"] <= int(datetime.now(UTC).timestamp() * 1000)
    assert first["open"] == 2
    assert first["openData"] == {
        "ip": ["198.51.100.1", "198.51.100.2"],
        "ua": [UA, UA],
        "time": [int(ms(2030, 1).timestamp() * 1000), int(ms(2030, 2).timestamp() * 1000)],
    }
    assert first["click"] == 1
    assert first["clickData"] == {
        "ip": ["198.51.100.3"],
        "ua": [UA],
        "time": [int(ms(2030, 3).timestamp() * 1000)],
    }
    assert data[1]["open"] == 0
    assert data[1]["openData"] == {"ip": [], "ua": [], "time": []}


async def test_sizes_count_the_bodies_and_files(
    client: httpx.AsyncClient, account: Account
) -> None:
    files = [{"type": "text/plain", "name": "a.txt", "content": "ZXhhbXBsZSBmaWxl"}]
    images = [{"type": "image/png", "name": "logo", "content": "AAEC"}]
    await send(
        client, account, "sized", "ada@example.com", text="Hi", attachments=files, images=images
    )

    [entry] = await info(client, account, x_unique_id="sized")

    assert entry["attchSize"] == len(b"example file") + 3
    assert entry["mailSize"] == len("<p>Hello</p>") + len("Hi") + len(b"example file") + 3
    assert entry["status"] == "queued"


async def test_the_unique_id_is_matched_without_its_edge_spaces(
    client: httpx.AsyncClient, account: Account
) -> None:
    await send(client, account, "id ", "ada@example.com")

    assert len(await info(client, account, x_unique_id="id")) == 1
    assert len(await info(client, account, x_unique_id="id ")) == 1


async def test_pages_of_one_hundred_by_skip_page(
    client: httpx.AsyncClient, account: Account
) -> None:
    recipients = [f"r{i:03}@example.com" for i in range(101)]
    await send(client, account, "bulk", *recipients)

    first = await info(client, account, x_unique_id="bulk")
    second = await info(client, account, x_unique_id="bulk", skip_page=1)
    third = await info(client, account, x_unique_id="bulk", skip_page=2)

    assert len(first) == 100
    assert len(second) == 1
    assert third == []
    assert sorted(e["email"] for e in first + second) == recipients


async def test_another_accounts_messages_are_never_shown(
    client: httpx.AsyncClient, account: Account, sessionmaker: Sessionmaker
) -> None:
    await send(client, account, "test", "ada@example.com")
    other = await make_account(sessionmaker, "globex", user_name="smtp2", senders=())

    assert await info(client, other) == []
    assert len(await info(client, account)) == 1


async def test_wrong_credentials_and_bad_paging(
    client: httpx.AsyncClient, account: Account
) -> None:
    wrong = await client.post(
        "/messages/getMessageInfo",
        json={**with_account(MESSAGE_INFO_EXAMPLE, account), "token": "example token"},
    )
    negative = await client.post(
        "/messages/getMessageInfo",
        json={**with_account(MESSAGE_INFO_EXAMPLE, account), "skip_page": -1},
    )
    huge = await client.post(
        "/messages/getMessageInfo",
        json={**with_account(MESSAGE_INFO_EXAMPLE, account), "skip_page": 10**30},
    )

    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Token MissMatch"
    for response in (negative, huge):
        assert response.status_code == 400, response.text
        assert response.json()["name"] == "ValidationError"


async def test_an_open_of_the_real_pixel_is_shown(
    client: httpx.AsyncClient,
    account: Account,
    worker: Worker,
    sessionmaker: Sessionmaker,
    smtp_server: SmtpServer,
) -> None:
    await send(client, account, "pixel", "ada@example.com", headers={
        "X-Unique-Id": "pixel", "X-STes-TrackOpen": "yes"
    })  # fmt: skip
    await settle(worker, sessionmaker)
    html = next(
        p.get_content()
        for p in smtp_server.received[0].message().walk()
        if p.get_content_type() == "text/html"
    )
    pixel = re.search(r'src="https?://[^/]+(/t/o/[^"]+)"', html)
    assert pixel is not None, html

    hit = await client.get(pixel.group(1), headers={"User-Agent": UA})

    assert hit.status_code == 200
    [entry] = await info(client, account, x_unique_id="pixel")
    assert entry["open"] == 1
    assert entry["openData"]["ua"] == [UA]
    assert len(entry["openData"]["ip"]) == len(entry["openData"]["time"]) == 1
