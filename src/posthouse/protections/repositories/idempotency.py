"""SQL for idempotency records and seed 001's duplicate detection."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from posthouse.db import dialect
from posthouse.db.models import IdempotencyRecord, Message

Bind = AsyncSession | AsyncConnection


_CLAIM = {
    name: dialect.insert(name, IdempotencyRecord)
    .on_conflict_do_nothing(index_elements=["workspace_id", "scope", "key"])
    .returning(IdempotencyRecord.id)
    for name in dialect.NAMES
}


# Built once, as Core: an ORM update built per call cost more CPU than its round trip.
_idempotency = dialect.table_of(IdempotencyRecord)
_COMPLETE = (
    update(_idempotency)
    .where(_idempotency.c.id == bindparam("b_id"))
    .values(
        {
            name: bindparam(name, type_=_idempotency.c[name].type)
            for name in ("completed_at", "response_status", "response_body", "message_id")
        }
    )
)


class IdempotencyRepository:
    def __init__(self, session: Bind) -> None:
        self.session = session

    async def insert_claim(self, row: dict[str, Any]) -> bool:
        return (await self.session.scalar(_CLAIM[dialect.name_of(self.session)], row)) is not None

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

    async def complete(self, record_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(_COMPLETE, {"b_id": record_id, **values})

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
