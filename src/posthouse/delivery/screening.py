"""Delivery state changes outside the send loop, all made here: the worker's last check
before sending (suspension and suppression at send time), held mail released when a
suspension is lifted, and a sent delivery that came back as a bounce."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import utcnow
from posthouse.db.models import DeliveryStatus
from posthouse.delivery.classify import Verdict
from posthouse.delivery.repository import ClaimedDelivery, DeliveryStateRepository
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.protections import reputation, suppression

HELD_REPLY = "held: the workspace is suspended"
SUPPRESSED_REPLY = "not sent: the recipient is on the suppression list"


async def screen(session: AsyncSession, *, claimed: list[ClaimedDelivery]) -> list[ClaimedDelivery]:
    """Return the claimed deliveries that may be sent. A suspended workspace's deliveries
    are held (released when an operator lifts the suspension); a recipient suppressed
    after submission is rejected and gets a Reject event. Runs in the claim transaction."""
    if not claimed:
        return claimed
    now = utcnow()
    suspended = await reputation.suspended_among(
        session, workspace_ids={d.workspace_id for d in claimed}
    )
    suppressed = await suppression.active_among(
        session,
        recipients={
            (d.workspace_id, d.use_case_id, d.recipient)
            for d in claimed
            if d.workspace_id not in suspended
        },
        now=now,
    )
    held = [d for d in claimed if d.workspace_id in suspended]
    rejected = [d for d in claimed if (d.workspace_id, d.use_case_id, d.recipient) in suppressed]
    if not held and not rejected:
        return claimed
    gate = DeliveryStateRepository(session)
    await gate.stop([d.id for d in held], status=DeliveryStatus.HELD, reply=HELD_REPLY, now=now)
    await gate.stop(
        [d.id for d in rejected], status=DeliveryStatus.REJECTED, reply=SUPPRESSED_REPLY, now=now
    )
    await events_service.ingest(
        session,
        [
            events_service.NewEvent(
                workspace_id=d.workspace_id,
                message_id=d.message_id,
                delivery_id=d.id,
                type=EventType.REJECT,
                occurred_at=now,
                dedupe_key=f"{d.id}:{EventType.REJECT}",
                data={"recipient": d.recipient, "reason": "suppressed"},
            )
            for d in rejected
        ],
    )
    stopped = {d.id for d in held} | {d.id for d in rejected}
    return [d for d in claimed if d.id not in stopped]


async def release_held(session: AsyncSession, *, workspace_id: uuid.UUID) -> int:
    """Queue a workspace's held deliveries again (its suspension was lifted)."""
    return await DeliveryStateRepository(session).release_held(workspace_id, now=utcnow())


async def mark_bounced(session: AsyncSession, *, delivery_id: uuid.UUID, verdict: Verdict) -> None:
    """A delivery the next hop accepted, then returned: show it as bounced, and why."""
    await DeliveryStateRepository(session).mark_bounced(delivery_id, verdict)
