"""Engagement: what a tracking hit or an unsubscribe does.

Invariants:
- Only a genuine token of the right kind finds anything: a tampered, unknown or
  other-delivery token is ``NotFound`` (the door answers 404), so no hit can redirect
  anywhere but to a target recorded for that very delivery when its copy was built.
- Every hit is an event (Open, Click, Unsubscribe) ingested through events.service, with
  the time, IP, user agent, URL and whether a machine made it (tracking.machine).
- An unsubscribe suppresses the recipient (reason ``unsubscribe``) once, however often
  it is asked for: its event's dedupe key is the delivery. It is scoped to the use case
  the mail went through, else to the whole workspace.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.config import Settings
from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Attachment
from posthouse.errors import TrackingNotFound
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.tracking.machine import Hit, machine_reason
from posthouse.tracking.repository import Engagement, TrackedDelivery, TrackingRepository
from posthouse.tracking.tokens import TokenClaims, TokenKind, TokenSigner, token_signer


def signer(settings: Settings) -> TokenSigner:
    secrets = (
        settings.secret_key.get_secret_value(),
        *(key.get_secret_value() for key in settings.previous_secret_keys),
    )
    return token_signer(secrets)


def _claims(signer: TokenSigner, token: str, kind: TokenKind) -> TokenClaims:
    claims = signer.verify(token, kind)
    if claims is None:
        raise TrackingNotFound("no such link")
    return claims


@dataclass(frozen=True)
class Visitor:
    """Who made a request: what the door read from it."""

    method: str
    ip: str | None
    user_agent: str


def _hit_event(
    delivery: TrackedDelivery,
    kind: EventType,
    visitor: Visitor,
    *,
    at: datetime,
    click: bool,
    extra: dict[str, object],
) -> events_service.NewEvent:
    reason = machine_reason(_hit(visitor, at, delivery.sent_at), click=click)
    return events_service.NewEvent(
        workspace_id=delivery.workspace_id,
        message_id=delivery.message_id,
        delivery_id=delivery.id,
        type=kind,
        occurred_at=at,
        # Every hit is an event of its own: the key only makes a retried ingest one row.
        dedupe_key=f"{delivery.id}:{kind}:{new_id()}",
        data={**_hit_data(visitor, reason), **extra},
    )


def _hit(visitor: Visitor, at: datetime, delivered_at: datetime | None) -> Hit:
    return Hit(visitor.method, visitor.user_agent, visitor.ip, at, delivered_at)


def _hit_data(visitor: Visitor, reason: str | None) -> dict[str, object]:
    """What every hit records; the recipient is the delivery's (``delivery_id``)."""
    return {
        "ip": visitor.ip,
        "user_agent": visitor.user_agent[:500],
        "machine": reason is not None,
        "machine_reason": reason,
    }


async def record_open(
    engine: AsyncEngine, *, signer: TokenSigner, token: str, visitor: Visitor
) -> None:
    """Record an Open: one statement on a connection of its own, no session (the pixel
    is the hottest path); the event reads its delivery itself."""
    claims = _claims(signer, token, TokenKind.OPEN)
    at = utcnow()
    stored = await events_service.ingest_for_delivery(
        engine,
        delivery_id=claims.delivery_id,
        type=EventType.OPEN,
        occurred_at=at,
        dedupe_key=f"{claims.delivery_id}:{EventType.OPEN}:{new_id()}",
        data=_hit_data(visitor, machine_reason(_hit(visitor, at, None), click=False)),
    )
    if not stored:
        raise TrackingNotFound("no such link")


async def record_click(
    engine: AsyncEngine, *, signer: TokenSigner, token: str, visitor: Visitor
) -> str:
    """The recorded target to redirect to; the click is recorded, like an open, by one
    statement on a connection of its own."""
    claims = _claims(signer, token, TokenKind.CLICK)
    at = utcnow()
    # One statement finds the recorded target and stores the Click. Only the timing rule
    # needs the delivery's send time, which that statement returns: a click it flags (a
    # scanner's, seconds after delivery) costs a second statement.
    reason = machine_reason(_hit(visitor, at, None), click=True)
    stored = await events_service.ingest_for_link(
        engine,
        delivery_id=claims.delivery_id,
        position=claims.position,
        occurred_at=at,
        dedupe_key=f"{claims.delivery_id}:{EventType.CLICK}:{new_id()}",
        data={**_hit_data(visitor, reason), "link_position": claims.position},
    )
    if stored is None:
        raise TrackingNotFound("no such link")
    timed = machine_reason(_hit(visitor, at, stored.sent_at), click=True)
    if reason is None and timed is not None:
        data = {
            **_hit_data(visitor, timed),
            "link_position": claims.position,
            "url": stored.url,
            "delivered_at": stored.sent_at.isoformat() if stored.sent_at else None,
        }
        await events_service.amend_data(engine, event_id=stored.id, data=data)
    return stored.url


async def open_attachment(
    session: AsyncSession, *, signer: TokenSigner, token: str, visitor: Visitor
) -> Attachment:
    """The tracked attachment to serve; the fetch is recorded as a Click naming the file."""
    claims = _claims(signer, token, TokenKind.ATTACHMENT)
    tracking = TrackingRepository(session)
    await tracking.autocommit()
    found = await tracking.delivery_and_attachment(claims.delivery_id, claims.position)
    if found is None:
        raise TrackingNotFound("no such attachment")
    delivery, attachment = found
    event = _hit_event(
        delivery,
        EventType.CLICK,
        visitor,
        at=utcnow(),
        click=True,
        extra={"attachment": attachment.filename, "attachment_position": attachment.position},
    )
    await events_service.ingest(session, [event])
    return attachment


async def unsubscribe_target(
    session: AsyncSession, *, signer: TokenSigner, token: str
) -> TrackedDelivery:
    """The delivery an unsubscribe token names (for the confirmation page)."""
    claims = _claims(signer, token, TokenKind.UNSUBSCRIBE)
    delivery = await TrackingRepository(session).delivery(claims.delivery_id, with_redirect=True)
    if delivery is None:
        raise TrackingNotFound("no such link")
    return delivery


async def unsubscribe(
    session: AsyncSession,
    *,
    signer: TokenSigner,
    token: str,
    visitor: Visitor,
    source: str = "one_click",
) -> TrackedDelivery:
    """Unsubscribe the recipient of the delivery ``token`` names: an Unsubscribe event,
    which suppresses the address (events.service). Asking again changes nothing."""
    delivery = await unsubscribe_target(session, signer=signer, token=token)
    await unsubscribe_delivery(session, delivery=delivery, visitor=visitor, source=source)
    return delivery


async def unsubscribe_delivery(
    session: AsyncSession, *, delivery: TrackedDelivery, visitor: Visitor, source: str
) -> None:
    event = events_service.NewEvent(
        workspace_id=delivery.workspace_id,
        message_id=delivery.message_id,
        delivery_id=delivery.id,
        type=EventType.UNSUBSCRIBE,
        occurred_at=utcnow(),
        dedupe_key=f"{delivery.id}:{EventType.UNSUBSCRIBE}",
        data={
            "recipient": delivery.recipient,
            "ip": visitor.ip,
            "user_agent": visitor.user_agent[:500],
            "source": source,
            # Where the suppression applies (events.service): the use case the mail
            # went through, else the whole workspace.
            **unsubscribe_scope(delivery.use_case_id),
        },
    )
    await events_service.ingest(session, [event])


def unsubscribe_scope(use_case_id: uuid.UUID | None) -> dict[str, str | None]:
    if use_case_id is None:
        return {"scope": "workspace", "use_case_id": None}
    return {"scope": "use_case", "use_case_id": str(use_case_id)}


def is_unsubscribe_address(address: str) -> bool:
    """Shaped like the List-Unsubscribe mailto address, ``u-<token>@<return-path domain>``."""
    return address.strip().strip("<>").lower().startswith("u-")


async def unsubscribe_by_mail(
    session: AsyncSession, *, signer: TokenSigner, address: str, sender: str
) -> TrackedDelivery | None:
    """Mail to the List-Unsubscribe mailto address unsubscribes like the one-click POST;
    None when its token is not genuine."""
    local_part = address.strip().strip("<>").rsplit("@", 1)[0]
    try:
        return await unsubscribe(
            session,
            signer=signer,
            token=local_part[2:],
            visitor=Visitor("MAIL", None, sender),
            source="mailto",
        )
    except TrackingNotFound:
        return None


async def record_links(session: AsyncSession, *, targets: dict[uuid.UUID, list[str]]) -> None:
    """Record, per delivery, the link targets its copy points at (before it is sent)."""
    rows = [
        {"delivery_id": delivery_id, "position": position, "url": url}
        for delivery_id, urls in targets.items()
        for position, url in enumerate(urls)
    ]
    await TrackingRepository(session).add_links(rows)


async def engagement(session: AsyncSession, *, message_id: uuid.UUID) -> Engagement:
    """Opens and clicks of a message by people: counts and first/last times."""
    return await TrackingRepository(session).engagement(message_id)
