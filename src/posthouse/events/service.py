"""Event ingestion: every source (worker, inbound reports, tracking) records events here."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import new_id, utcnow
from posthouse.events.repository import EventRepository
from posthouse.events.types import EventType


@dataclass(frozen=True)
class NewEvent:
    workspace_id: uuid.UUID
    message_id: uuid.UUID
    delivery_id: uuid.UUID | None
    type: EventType
    occurred_at: datetime
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)


async def ingest(session: AsyncSession, events: list[NewEvent]) -> None:
    """Store events; one already stored under the same dedupe key is ignored."""
    received_at = utcnow()
    await EventRepository(session).add_many(
        [
            {
                "id": new_id(),
                "workspace_id": event.workspace_id,
                "message_id": event.message_id,
                "delivery_id": event.delivery_id,
                "type": str(event.type),
                "occurred_at": event.occurred_at,
                "received_at": received_at,
                "data": event.data,
                "dedupe_key": event.dedupe_key,
            }
            for event in events
        ]
    )
