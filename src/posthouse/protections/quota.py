"""The monthly quota: recipients accepted per workspace per calendar month (UTC)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.db.models import Workspace
from posthouse.errors import QuotaExceeded
from posthouse.protections import side
from posthouse.protections.repositories.usage import UsageRepository


@dataclass(frozen=True)
class Reservation:
    workspace_id: uuid.UUID
    month: str
    recipients: int
    committed: bool  # made as a side write: giving it back needs one too


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


async def reserve(
    session: AsyncSession,
    *,
    workspace: Workspace,
    recipients: int,
    now: datetime,
    side_engine: AsyncEngine | None = None,
) -> Reservation | None:
    """Count ``recipients`` against the workspace's quota, or refuse the whole send.

    Exact under concurrency: one conditional UPDATE of the month's counter decides. On
    a ``side_engine`` (the api on PostgreSQL) it is a side write, so the counter row is
    locked only while that statement runs, and the sends of one workspace do not queue
    behind each other's commits; a send that fails afterwards gives its reservation back
    (``release``), and only a crash in between leaves the month counting a few
    recipients too many, erring on the side of refusing. Elsewhere the UPDATE runs in
    the request's transaction and holds the row until it ends.

    Without a quota nothing is counted: usage is then read from the deliveries
    themselves (``usage_this_month``).
    """
    quota = workspace.monthly_quota
    if quota is None or recipients == 0:
        return None
    now = now.astimezone(UTC)
    month = f"{now.year:04d}-{now.month:02d}"
    engine = side_engine
    if engine is None:
        added = await _add(UsageRepository(session), workspace, month, recipients, now)
    else:
        async with side.connection(engine) as connection:
            added = await _add(UsageRepository(connection), workspace, month, recipients, now)
    if not added:
        raise QuotaExceeded()
    return Reservation(workspace.id, month, recipients, committed=engine is not None)


async def _add(
    usage: UsageRepository, workspace: Workspace, month: str, recipients: int, now: datetime
) -> bool:
    quota = workspace.monthly_quota
    assert quota is not None
    added = await usage.try_add(workspace.id, month, count=recipients, quota=quota)
    if added is None:
        await usage.start_month(workspace.id, month, since=month_start(now))
        added = await usage.try_add(workspace.id, month, count=recipients, quota=quota)
    return bool(added)


async def release(
    session: AsyncSession, *, reservation: Reservation, side_engine: AsyncEngine | None = None
) -> None:
    """Give back the reservation of a send that failed. One made in the request's
    transaction goes with its rollback."""
    engine = side_engine
    if not reservation.committed or engine is None:
        return
    async with side.connection(engine) as connection:
        await UsageRepository(connection).subtract(
            reservation.workspace_id, reservation.month, count=reservation.recipients
        )


async def usage_this_month(session: AsyncSession, *, workspace_id: uuid.UUID, now: datetime) -> int:
    return await UsageRepository(session).accepted_since(workspace_id, month_start(now))


async def quota_changed(session: AsyncSession, *, workspace_id: uuid.UUID) -> None:
    """Counters are recounted from the deliveries after a quota change, since sends made
    while there was no quota were not counted."""
    await UsageRepository(session).forget(workspace_id)
