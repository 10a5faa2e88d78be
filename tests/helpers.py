"""Shared checks for the spine's tests: what the database holds, and waiting for the queue."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.models import (
    Attachment,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    Message,
)
from posthouse.delivery.worker import Worker
from posthouse.sending.ids import parse_reference_id

Sessionmaker = async_sessionmaker[AsyncSession]
FINAL_STATUSES = {DeliveryStatus.SENT, DeliveryStatus.BOUNCED, DeliveryStatus.REJECTED}


async def count(sessionmaker: Sessionmaker, model: type[Any]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def stored_rows(sessionmaker: Sessionmaker) -> dict[str, int]:
    """How many rows each table of an accepted email holds."""
    return {
        "message": await count(sessionmaker, Message),
        "attachment": await count(sessionmaker, Attachment),
        "delivery": await count(sessionmaker, Delivery),
    }


NOTHING_STORED = {"message": 0, "attachment": 0, "delivery": 0}


async def deliveries(sessionmaker: Sessionmaker, reference_id: str | None = None) -> list[Delivery]:
    async with sessionmaker() as session:
        query = select(Delivery).order_by(Delivery.recipient)
        if reference_id is not None:
            query = query.where(Delivery.message_id == parse_reference_id(reference_id))
        return list(await session.scalars(query))


async def statuses(sessionmaker: Sessionmaker, reference_id: str | None = None) -> list[str]:
    """The delivery statuses of an email (of every email without one), by recipient."""
    return [d.status for d in await deliveries(sessionmaker, reference_id)]


async def attempts(sessionmaker: Sessionmaker, delivery_id: Any) -> list[DeliveryAttempt]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.number)
        )
        return list(rows)


async def events(sessionmaker: Sessionmaker, delivery_id: Any) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(Event.type)
            .where(Event.delivery_id == delivery_id)
            .order_by(Event.occurred_at, Event.received_at)
        )
        return list(rows)


async def message_row(sessionmaker: Sessionmaker, reference_id: str) -> Message:
    async with sessionmaker() as session:
        message = await session.get(Message, parse_reference_id(reference_id))
        assert message is not None
        return message


async def settle(worker: Worker, sessionmaker: Sessionmaker, within: float = 10.0) -> None:
    """Run the worker until no delivery is waiting for a (re)try."""
    deadline = time.monotonic() + within
    while True:
        await worker.run_until_idle()
        pending = [d for d in await deliveries(sessionmaker) if d.status not in FINAL_STATUSES]
        if not pending:
            return
        assert time.monotonic() < deadline, f"still pending: {[d.status for d in pending]}"
        await asyncio.sleep(0.02)


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
