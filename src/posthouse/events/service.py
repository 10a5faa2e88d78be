"""Event ingestion: every source (worker, inbound reports, tracking) records events here."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.addresses import address_key
from posthouse.db.base import new_id, utcnow
from posthouse.errors import ValidationFailed
from posthouse.events.repository import EventRepository, HitRepository
from posthouse.events.types import STATE_OF_EVENT, EventType
from posthouse.protections import reputation as reputation_service
from posthouse.protections import suppression as suppression_service
from posthouse.protections.suppression import SuppressionReason


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
    """Store events; one already stored under the same dedupe key is ignored.

    This is the one place where outcomes protect the sender's reputation: a newly stored
    Permanent Bounce or Complaint suppresses its recipient (reason hard_bounce or
    complaint, with the event as source) and re-judges the workspace's rates, which may
    suspend it; an Unsubscribe suppresses its recipient (reason unsubscribe) for the use
    case its mail went through, or the whole workspace when it had none. An event
    ingested twice does this once.
    """
    received_at = utcnow()
    rows = [
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
    protective = [_suppression_reason(event) is not None for event in events]
    repository = EventRepository(session)
    await repository.add_many([row for row, p in zip(rows, protective, strict=True) if not p])
    await _derive_states(repository, events)
    if not any(protective):
        return
    stored = await repository.add_many_returning_ids(
        [row for row, p in zip(rows, protective, strict=True) if p]
    )
    new = [(row, event) for row, event in zip(rows, events, strict=True) if row["id"] in stored]
    if new:
        await _protect(session, new)


async def _derive_states(repository: EventRepository, events: list[NewEvent]) -> None:
    """Keep each delivery's derived state (seed 004) in step with its events. Taking the
    higher state is idempotent, so a duplicate event changes nothing."""
    by_state: dict[str, list[uuid.UUID]] = {}
    for event in events:
        state = STATE_OF_EVENT.get(event.type)
        if state is not None and event.delivery_id is not None:
            by_state.setdefault(state, []).append(event.delivery_id)
    for state, delivery_ids in by_state.items():
        await repository.raise_states(state, delivery_ids)


async def ingest_for_delivery(
    engine: AsyncEngine,
    *,
    delivery_id: uuid.UUID,
    type: EventType,
    occurred_at: datetime,
    dedupe_key: str,
    data: dict[str, Any],
) -> bool:
    """Store one event of a kind with no consequences (Open, Click) for a delivery known
    only by its id, in one statement that reads the delivery's workspace and message and
    commits on its own (events.repository.HitRepository); False when there is no such
    delivery. The hot path of a tracking pixel."""
    if _suppression_reason(
        NewEvent(uuid.UUID(int=0), uuid.UUID(int=0), delivery_id, type, occurred_at, "", data)
    ):
        raise ValueError(f"{type} events have consequences: use ingest()")
    return await HitRepository(engine).add_for_delivery(
        {
            "id": new_id(),
            "delivery_id": delivery_id,
            "type": str(type),
            "occurred_at": occurred_at,
            "received_at": utcnow(),
            "data": data,
            "dedupe_key": dedupe_key,
        }
    )


@dataclass(frozen=True)
class LinkEvent:
    """A Click stored by ingest_for_link: its id, the URL recorded for the link and when
    the delivery was sent."""

    id: uuid.UUID
    url: str
    sent_at: datetime | None


async def ingest_for_link(
    engine: AsyncEngine,
    *,
    delivery_id: uuid.UUID,
    position: int,
    occurred_at: datetime,
    dedupe_key: str,
    data: dict[str, Any],
) -> LinkEvent | None:
    """Store a Click for the link recorded at ``position`` of a delivery, the URL added to
    its data, in one statement committed on its own; None when no such link was recorded."""
    event_id = new_id()
    found = await HitRepository(engine).add_for_link(
        {
            "id": event_id,
            "delivery_id": delivery_id,
            "position": position,
            "type": str(EventType.CLICK),
            "occurred_at": occurred_at,
            "received_at": utcnow(),
            "data": data,
            "dedupe_key": dedupe_key,
        }
    )
    return LinkEvent(event_id, *found) if found is not None else None


async def amend_data(engine: AsyncEngine, *, event_id: uuid.UUID, data: dict[str, Any]) -> None:
    """Replace the data of an event of a kind with no consequences (a hit's machine flag
    that could only be judged once the event was stored)."""
    await HitRepository(engine).replace_data(event_id, data)


def _suppression_reason(event: NewEvent) -> SuppressionReason | None:
    if event.type == EventType.COMPLAINT:
        return SuppressionReason.COMPLAINT
    if event.type == EventType.BOUNCE and event.data.get("bounce_type") == "Permanent":
        return SuppressionReason.HARD_BOUNCE
    if event.type == EventType.UNSUBSCRIBE:
        return SuppressionReason.UNSUBSCRIBE
    return None


async def _protect(session: AsyncSession, new: list[tuple[dict[str, Any], NewEvent]]) -> None:
    recipients = await EventRepository(session).recipients(
        [e.delivery_id for _, e in new if e.delivery_id is not None]
    )
    entries = []
    for row, event in new:
        recipient, use_case_id = (
            recipients.get(event.delivery_id, (None, None)) if event.delivery_id else (None, None)
        )
        address = address_key(recipient) if recipient is not None else None
        if address is None and isinstance(event.data.get("recipient"), str):
            try:
                address = suppression_service.normalize(event.data["recipient"])
            except ValidationFailed:
                address = None
        reason = _suppression_reason(event)
        if address is not None and reason is not None:
            entries.append(
                suppression_service.AutomaticEntry(
                    workspace_id=event.workspace_id,
                    address=address,
                    reason=reason,
                    source_event_id=row["id"],
                    # An unsubscribe leaves the use case's mail only; a bounce or a
                    # complaint is about the address, so it stops everything.
                    use_case_id=use_case_id if reason == SuppressionReason.UNSUBSCRIBE else None,
                )
            )
    await suppression_service.add_automatic(session, entries=entries)
    # Unsubscribes say nothing about the sender's reputation.
    judged = {e.workspace_id for _, e in new if e.type in (EventType.BOUNCE, EventType.COMPLAINT)}
    for workspace_id in sorted(judged):
        await reputation_service.judge(session, workspace_id=workspace_id)
