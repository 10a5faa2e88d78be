"""The monthly quota: recipients accepted per workspace per calendar month (UTC)."""

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.db.models import Workspace
from posthouse.errors import QuotaExceeded
from posthouse.protections import side
from posthouse.protections.repositories.usage import UsageRepository


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def applies(workspace: Workspace) -> bool:
    """Whether the workspace's sends are counted (``reserve`` writes)."""
    return workspace.monthly_quota is not None


async def reserve(
    session: AsyncSession,
    *,
    workspace: Workspace,
    recipients: int,
    message_id: uuid.UUID,
    now: datetime,
    side_engine: AsyncEngine | None = None,
) -> None:
    """Count the ``recipients`` of a message just inserted (``message_id``, in the
    session's transaction) against the workspace's quota, or refuse the whole send
    (QuotaExceeded: the caller's rollback takes the message with it).

    Exact under concurrency: one conditional UPDATE of the month's counter decides. On
    a ``side_engine`` (the api on PostgreSQL) it is a side write, so the counter row is
    locked only while that statement runs, and the sends of one workspace do not queue
    behind each other's commits; only a failure between this and the request's commit
    leaves the month counting a few recipients too many, erring on the side of
    refusing. Elsewhere the UPDATE runs in the request's transaction and holds the row
    until it ends.

    Without a quota nothing is counted: usage is then read from the deliveries
    themselves (``usage_this_month``).
    """
    if not applies(workspace) or recipients == 0:
        return
    now = now.astimezone(UTC)
    month = f"{now.year:04d}-{now.month:02d}"
    if side_engine is None:
        added = await _add(UsageRepository(session), workspace, month, recipients, message_id, now)
    else:
        async with side.connection(side_engine) as connection:
            added = await _add(
                UsageRepository(connection), workspace, month, recipients, message_id, now
            )
    if not added:
        raise QuotaExceeded()


async def _add(
    usage: UsageRepository,
    workspace: Workspace,
    month: str,
    recipients: int,
    message_id: uuid.UUID,
    now: datetime,
) -> bool:
    quota = workspace.monthly_quota
    assert quota is not None
    added = await usage.try_add(workspace.id, month, count=recipients, quota=quota)
    if added is None:
        # The message's own deliveries are visible in the request's transaction; they
        # are counted by try_add, not as sent before.
        await usage.start_month(
            workspace.id, month, since=month_start(now), excluding_message=message_id
        )
        added = await usage.try_add(workspace.id, month, count=recipients, quota=quota)
    return bool(added)


async def usage_this_month(session: AsyncSession, *, workspace_id: uuid.UUID, now: datetime) -> int:
    return await UsageRepository(session).accepted_since(workspace_id, month_start(now))


async def quota_changed(session: AsyncSession, *, workspace_id: uuid.UUID) -> None:
    """Counters are recounted from the deliveries after a quota change, since sends made
    while there was no quota were not counted."""
    await UsageRepository(session).forget(workspace_id)
