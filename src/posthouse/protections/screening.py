"""The worker's last check before sending: suspension and suppression at send time."""

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import utcnow
from posthouse.db.models import DeliveryStatus
from posthouse.delivery.repository import ClaimedDelivery
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.protections.repository import (
    GateRepository,
    ReputationRepository,
    SuppressionRepository,
)

HELD_REPLY = "held: the workspace is suspended"
SUPPRESSED_REPLY = "not sent: the recipient is on the suppression list"


async def screen(session: AsyncSession, *, claimed: list[ClaimedDelivery]) -> list[ClaimedDelivery]:
    """Return the claimed deliveries that may be sent. A suspended workspace's deliveries
    are held (released when an operator lifts the suspension); a recipient suppressed
    after submission is rejected and gets a Reject event. Runs in the claim transaction."""
    if not claimed:
        return claimed
    now = utcnow()
    suspended = await ReputationRepository(session).suspended_among(
        {d.workspace_id for d in claimed}
    )
    suppressed = await SuppressionRepository(session).active_pairs(
        {(d.workspace_id, d.recipient) for d in claimed if d.workspace_id not in suspended},
        now=now,
    )
    held = [d for d in claimed if d.workspace_id in suspended]
    rejected = [d for d in claimed if (d.workspace_id, d.recipient) in suppressed]
    if not held and not rejected:
        return claimed
    gate = GateRepository(session)
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
