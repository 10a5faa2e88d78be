"""SQL for the monthly usage counters the quota is kept in."""

import uuid
from datetime import datetime

from sqlalchemy import bindparam, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from posthouse.db import dialect
from posthouse.db.models import Delivery, MonthlyUsage

Bind = AsyncSession | AsyncConnection


_ADD_USAGE = (
    update(MonthlyUsage)
    .where(
        MonthlyUsage.workspace_id == bindparam("b_workspace"),
        MonthlyUsage.month == bindparam("b_month"),
        MonthlyUsage.count + bindparam("b_count") <= bindparam("b_quota"),
    )
    .values(count=MonthlyUsage.count + bindparam("b_count"))
    .returning(MonthlyUsage.count)
)


class UsageRepository:
    def __init__(self, session: Bind) -> None:
        self.session = session

    async def try_add(
        self, workspace_id: uuid.UUID, month: str, *, count: int, quota: int
    ) -> bool | None:
        """Add ``count`` if the month stays within ``quota``: True when added, False when
        it would exceed, None when the month has no counter yet. The conditional UPDATE
        is what makes the quota exact: concurrent ones queue on the row."""
        for _ in range(5):
            added = await self.session.scalar(
                _ADD_USAGE,
                {"b_workspace": workspace_id, "b_month": month, "b_count": count, "b_quota": quota},
            )
            if added is not None:
                return True
            current = await self.session.scalar(
                select(MonthlyUsage.count).where(
                    MonthlyUsage.workspace_id == workspace_id, MonthlyUsage.month == month
                )
            )
            if current is None:
                return None
            if current + count > quota:
                return False
            # The row was created (or changed) by a commit between the two statements:
            # this statement's snapshot sees it, so the UPDATE is tried again.
        return False

    async def start_month(
        self, workspace_id: uuid.UUID, month: str, *, since: datetime, excluding_message: uuid.UUID
    ) -> None:
        """Create the month's counter from the deliveries already accepted this month (a
        quota set mid-month counts what was sent before it), but those of
        ``excluding_message``, the one being counted. A concurrent creator wins and this
        is a no-op."""
        already = (
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.workspace_id == workspace_id,
                Delivery.created_at >= since,
                Delivery.message_id != excluding_message,
            )
            .scalar_subquery()
        )
        statement = dialect.insert(dialect.name_of(self.session), MonthlyUsage).from_select(
            ["workspace_id", "month", "count"],
            select(
                literal(workspace_id, MonthlyUsage.workspace_id.type),
                literal(month, MonthlyUsage.month.type),
                already,
            ),
        )
        await self.session.execute(
            statement.on_conflict_do_nothing(index_elements=["workspace_id", "month"])
        )

    async def forget(self, workspace_id: uuid.UUID) -> None:
        """Drop the counters so the next send recounts them from the deliveries."""
        await self.session.execute(
            delete(MonthlyUsage).where(MonthlyUsage.workspace_id == workspace_id)
        )

    async def accepted_since(self, workspace_id: uuid.UUID, since: datetime) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.workspace_id == workspace_id, Delivery.created_at >= since)
        )
        return int(count or 0)
