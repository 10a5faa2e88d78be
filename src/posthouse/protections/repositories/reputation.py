"""SQL for reputation: the event counts a workspace is judged on, and its suspension."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, distinct, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db import dialect
from posthouse.db.models import Event, Workspace


class ReputationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def outcome_counts(self, workspace_id: uuid.UUID, *, since: datetime) -> dict[str, int]:
        """Distinct deliveries per outcome since ``since``: delivered, hard-bounced and
        complained. A delivery bounced by both the worker and a DSN counts once."""
        rows = await self.session.execute(outcome_counts_statement(workspace_id, since=since))
        return {str(k): int(n) for k, n in rows}

    async def suspend(self, workspace_id: uuid.UUID, *, reason: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(Workspace)
            .where(Workspace.id == workspace_id, Workspace.suspended_at.is_(None))
            .values(suspended_at=now, suspension_reason=reason)
        )
        return bool(dialect.rowcount(result))

    async def suspended_among(self, workspace_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        ids = set(workspace_ids)
        if not ids:
            return set()
        rows = await self.session.scalars(
            select(Workspace.id).where(Workspace.id.in_(ids), Workspace.suspended_at.is_not(None))
        )
        return set(rows)


def outcome_counts_statement(workspace_id: uuid.UUID, *, since: datetime) -> Select[Any]:
    """Only a Permanent bounce (a hard one, delivery/classify.py) counts as bounced. Also
    run on a plain connection (delivery/reclassify.py, from a migration)."""
    permanent = Event.data["bounce_type"].as_string() == "Permanent"
    kind = case(
        (Event.type == "Delivery", "delivered"),
        (and_(Event.type == "Bounce", permanent), "bounced"),
        (Event.type == "Complaint", "complained"),
        else_="other",
    )
    return (
        select(kind, func.count(distinct(func.coalesce(Event.delivery_id, Event.id))))
        .where(
            Event.workspace_id == workspace_id,
            Event.occurred_at >= since,
            Event.type.in_(("Delivery", "Bounce", "Complaint")),
        )
        .group_by(kind)
    )
