"""SQL for events. Inserts are idempotent on ``dedupe_key``."""

import uuid
from typing import Any

from sqlalchemy import Insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db import dialect
from posthouse.db.arrays import insert_rows
from posthouse.db.models import Delivery, Event
from posthouse.events.types import lower_states


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert_ignoring_duplicates(self) -> Insert:
        # The table, not the mapped class: the worker stores an event per attempt, and the
        # ORM's bulk insert adds per-row work (attribute expansion, annotations) to it.
        statement = dialect.insert(dialect.name_of(self.session), dialect.table_of(Event))
        return statement.on_conflict_do_nothing(index_elements=["dedupe_key"])

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        await insert_rows(
            self.session,
            dialect.table_of(Event),
            rows,
            elsewhere=self._insert_ignoring_duplicates(),
            ignore_conflicts_on="dedupe_key",
        )

    async def add_many_returning_ids(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Like add_many; returns the ids of the rows actually stored (not duplicates)."""
        stored: set[uuid.UUID] = set()
        for row in rows:
            inserted = await self.session.scalar(
                self._insert_ignoring_duplicates().returning(dialect.table_of(Event).c.id), row
            )
            if inserted is not None:
                stored.add(inserted)
        return stored

    async def recipients(self, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not delivery_ids:
            return {}
        rows = await self.session.execute(
            select(Delivery.id, Delivery.recipient).where(Delivery.id.in_(delivery_ids))
        )
        return {row.id: row.recipient for row in rows}

    async def raise_states(self, state: str, delivery_ids: list[uuid.UUID]) -> None:
        """Set the deliveries' derived state to ``state`` where it takes precedence."""
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.state.in_(lower_states(state)))
            .values(state=state)
            .execution_options(synchronize_session=False)
        )
