"""SQL for idempotency records and seed 001's duplicate detection."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from posthouse.db import dialect
from posthouse.db.models import IdempotencyRecord, Message

Bind = AsyncSession | AsyncConnection


# Built once, as Core: an ORM insert built per call cost more CPU than its round trip.
_INSERT_RECORD = insert(dialect.table_of(IdempotencyRecord))


class IdempotencyRepository:
    def __init__(self, session: Bind) -> None:
        self.session = session

    async def try_lock(self, lock_id: int) -> bool:
        """Take the key's transaction-scoped advisory lock without waiting (PostgreSQL).
        On SQLite the transaction's write lock, taken by its first statement, is it."""
        if not dialect.is_postgresql(self.session):
            return True
        return bool(await self.session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))))

    async def insert(self, row: dict[str, Any]) -> None:
        await self.session.execute(_INSERT_RECORD, row)

    async def get(self, workspace_id: uuid.UUID, scope: str, key: str) -> Row[Any] | None:
        table = dialect.table_of(IdempotencyRecord)
        result = await self.session.execute(
            select(table).where(
                table.c.workspace_id == workspace_id, table.c.scope == scope, table.c.key == key
            )
        )
        return result.first()

    async def delete(self, record_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id)
        )

    async def delete_expired(self, *, now: datetime) -> int:
        result = await self.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        )
        return dialect.rowcount(result)


class DuplicateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest_with_hash(
        self, workspace_id: uuid.UUID, content_hash: str, *, since: datetime
    ) -> Message | None:
        return await self.session.scalar(
            select(Message)
            .where(
                Message.workspace_id == workspace_id,
                Message.content_hash == content_hash,
                Message.created_at >= since,
            )
            .order_by(Message.created_at.desc())
            .limit(1)
        )
