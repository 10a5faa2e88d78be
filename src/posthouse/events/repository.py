"""SQL for events. Inserts are idempotent on ``dedupe_key``."""

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import Event


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert_ignoring_duplicates(self) -> Insert:
        if self.session.bind.dialect.name == "postgresql":
            return postgresql.insert(Event).on_conflict_do_nothing(index_elements=["dedupe_key"])
        return sqlite.insert(Event).on_conflict_do_nothing(index_elements=["dedupe_key"])

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(self._insert_ignoring_duplicates(), rows)
