"""Tracking hits when the database goes away and comes back: they run on a raw pooled
connection outside SQLAlchemy's execution on PostgreSQL (db/driver_sql.py), so a lost
connection must still be seen as an outage (no 500, no traceback) and be dropped from
the pool, so hits work again once the database is back."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from posthouse.config import Settings
from posthouse.db.models import Delivery, Event
from posthouse.tracking.tokens import TokenKind, TokenSigner
from tests.conftest import PG_URL, SenderTokens
from tests.processes import ApiProcess
from tests.tcp_proxy import TcpProxy
from tests.tracking.conftest import FIREFOX, Sessionmaker, send

SECRET = "a secret for the fault test"


@pytest.fixture
def api() -> Iterator[list[ApiProcess]]:
    started: list[ApiProcess] = []
    yield started
    for process in started:
        process.kill()


@pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server to lose and find again")
async def test_hits_during_an_outage_answer_404_and_work_again_after_it(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    settings: Settings,
    sessionmaker: Sessionmaker,
    api: list[ApiProcess],
    tmp_path: Path,
) -> None:
    await send(client, sender, trackOpens=True)
    async with sessionmaker() as session:
        delivery_id: uuid.UUID = await session.scalar(select(Delivery.id))
    pixel = "/t/o/" + TokenSigner((SECRET,)).sign(TokenKind.OPEN, delivery_id)
    url = make_url(settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.up()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    process = ApiProcess(
        settings.model_copy(update={"database_url": proxied}),
        tmp_path,
        "api",
        POSTHOUSE_SECRET_KEY=SECRET,
    )
    api.append(process)
    headers = {"User-Agent": FIREFOX}
    try:
        await process.started()
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            before = [await http.get(pixel, headers=headers) for _ in range(3)]
            await proxy.down()  # the database restarts: every pooled connection is lost
            during = [await http.get(pixel, headers=headers) for _ in range(5)]
            await proxy.up()
            after = None
            for _ in range(100):
                after = await http.get(pixel, headers=headers)
                if after.status_code == 200:
                    break
                await asyncio.sleep(0.1)
    finally:
        await proxy.down()

    assert [r.status_code for r in before] == [200, 200, 200]
    assert [r.status_code for r in during] == [404] * 5
    assert after is not None
    assert after.status_code == 200
    async with sessionmaker() as session:
        opens = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "Open")
        )
    assert opens == 4
    log = process.text()
    assert "Traceback" not in log
    assert "database unavailable" in log
