"""All SQL of the history: lists with keyset paging, details, events, the feed.

Seed 004's email is one recipient's copy: a ``delivery`` row with its ``message``. Lists
run newest first on (created_at, id), one index range each (see the delivery indexes in
db/models.py); events run oldest first on (occurred_at, id)."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    case,
    exists,
    false,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from posthouse.db import feed
from posthouse.db.models import Attachment, Delivery, Domain, Event, Message
from posthouse.events.types import EventType


@dataclass(frozen=True)
class EmailQuery:
    """Which emails (recipient copies) of a workspace; every given filter applies."""

    workspace_id: uuid.UUID
    use_case_id: uuid.UUID | None = None
    from_domain: str | None = None  # the setup
    recipients: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    sent_after: datetime | None = None  # inclusive
    sent_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class MessageQuery:
    """Which messages of one sender (the native history)."""

    workspace_id: uuid.UUID
    sender_id: uuid.UUID
    recipients: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    sent_after: datetime | None = None
    sent_before: datetime | None = None
    subject_contains: str | None = None


@dataclass(frozen=True)
class EventQuery:
    workspace_id: uuid.UUID
    use_case_id: uuid.UUID | None = None
    from_domain: str | None = None
    delivery_ids: tuple[uuid.UUID, ...] = ()
    types: tuple[str, ...] = ()
    after: datetime | None = None  # inclusive
    before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class EmailRow:
    id: uuid.UUID
    message_id: uuid.UUID
    use_case_id: uuid.UUID | None
    from_domain: str
    from_email: str
    recipient: str
    subject: str
    state: str
    sent_at: datetime
    attachment_count: int


@dataclass
class Engagement:
    open_count: int = 0
    click_count: int = 0


@dataclass(frozen=True)
class FeedEvent:
    event: Event
    recipient: str | None
    position: list[Any] = field(default_factory=list)


_EMAIL_COLUMNS = (
    Delivery.id,
    Delivery.message_id,
    Delivery.use_case_id,
    Delivery.from_domain,
    Message.from_email,
    Delivery.recipient,
    Message.subject,
    Delivery.state,
    Delivery.created_at,
    Message.attachment_count,
)
_ENGAGEMENT = (EventType.OPEN, EventType.CLICK)


def _decided(states: tuple[str, ...]) -> ColumnElement[bool]:
    # Repeats what the partial state indexes require, so SQLite's planner (which only
    # matches a partial index's WHERE term literally) can use them too.
    return Delivery.state != "sent" if "sent" not in states else true()


def _machine() -> ColumnElement[bool]:
    """Open/Click events a machine (a mail scanner, a proxy) caused: left out of counts."""
    return func.coalesce(Event.data["machine"].as_boolean(), false())


class HistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> Any:
        return self.session.bind.dialect

    # Emails: one recipient's copy each.

    def _emails(self, query: EmailQuery) -> Select[Any]:
        statement = select(*_EMAIL_COLUMNS).join(Message, Message.id == Delivery.message_id)
        if query.use_case_id is not None:
            statement = statement.where(Delivery.use_case_id == query.use_case_id)
        if query.from_domain is not None:
            statement = statement.where(
                Delivery.workspace_id == query.workspace_id,
                Delivery.from_domain == query.from_domain,
            )
        else:
            statement = statement.where(Delivery.workspace_id == query.workspace_id)
        if query.recipients:
            statement = statement.where(Delivery.recipient.in_(query.recipients))
        if query.states:
            statement = statement.where(Delivery.state.in_(query.states), _decided(query.states))
        if query.sent_after is not None:
            statement = statement.where(Delivery.created_at >= query.sent_after)
        if query.sent_before is not None:
            statement = statement.where(Delivery.created_at < query.sent_before)
        return statement

    async def emails(
        self, query: EmailQuery, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[EmailRow]:
        """Up to ``limit`` emails, newest first, older than the position ``before``."""
        statement = self._emails(query)
        if before is not None:
            statement = statement.where(tuple_(Delivery.created_at, Delivery.id) < tuple_(*before))
        statement = statement.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)
        return [EmailRow(*row) for row in await self.session.execute(statement)]

    async def email(self, workspace_id: uuid.UUID, delivery_id: uuid.UUID) -> EmailRow | None:
        row = (
            await self.session.execute(
                select(*_EMAIL_COLUMNS)
                .join(Message, Message.id == Delivery.message_id)
                .where(Delivery.id == delivery_id, Delivery.workspace_id == workspace_id)
            )
        ).first()
        return None if row is None else EmailRow(*row)

    async def engagement(self, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, Engagement]:
        """Open and click counts per delivery, machine-caused ones left out."""
        counts = {delivery_id: Engagement() for delivery_id in delivery_ids}
        if not delivery_ids:
            return counts
        rows = await self.session.execute(
            select(
                Event.delivery_id,
                func.sum(case((Event.type == EventType.OPEN, 1), else_=0)),
                func.sum(case((Event.type == EventType.CLICK, 1), else_=0)),
            )
            .where(
                Event.delivery_id.in_(delivery_ids),
                Event.type.in_(_ENGAGEMENT),
                ~_machine(),
            )
            .group_by(Event.delivery_id)
        )
        for delivery_id, opens, clicks in rows:
            counts[delivery_id] = Engagement(int(opens or 0), int(clicks or 0))
        return counts

    async def setups(self, workspace_id: uuid.UUID) -> dict[str, uuid.UUID]:
        """The workspace's domain ids by name."""
        rows = await self.session.execute(
            select(Domain.name, Domain.id).where(Domain.workspace_id == workspace_id)
        )
        return {row.name: row.id for row in rows}

    async def setup_name(self, workspace_id: uuid.UUID, domain_id: uuid.UUID) -> str | None:
        return await self.session.scalar(
            select(Domain.name).where(Domain.id == domain_id, Domain.workspace_id == workspace_id)
        )

    async def message(self, message_id: uuid.UUID) -> Message:
        message = await self.session.get(Message, message_id)
        assert message is not None  # a delivery's message is never deleted
        return message

    async def delivery(self, delivery_id: uuid.UUID) -> Delivery:
        delivery = await self.session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery

    async def deliveries(self, message_ids: list[uuid.UUID]) -> list[Delivery]:
        if not message_ids:
            return []
        rows = await self.session.scalars(
            select(Delivery)
            .where(Delivery.message_id.in_(message_ids))
            .order_by(Delivery.message_id, Delivery.id)
        )
        return list(rows)

    async def attachment_names(self, message_id: uuid.UUID) -> list[str]:
        rows = await self.session.scalars(
            select(Attachment.filename)
            .where(Attachment.message_id == message_id)
            .order_by(Attachment.position)
        )
        return list(rows)

    async def attachment_id(self, message_id: uuid.UUID, filename: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(Attachment.id).where(
                Attachment.message_id == message_id, Attachment.filename == filename
            )
        )

    async def attachment(self, attachment_id: uuid.UUID) -> Attachment | None:
        return await self.session.get(Attachment, attachment_id)

    # Events.

    async def events_of(self, delivery_ids: list[uuid.UUID]) -> list[Event]:
        """Every event of these deliveries, in the order they happened."""
        if not delivery_ids:
            return []
        rows = await self.session.scalars(
            select(Event)
            .where(Event.delivery_id.in_(delivery_ids))
            .order_by(Event.occurred_at, Event.id)
        )
        return list(rows)

    async def events(
        self, query: EventQuery, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Event]:
        """Up to ``limit`` events, oldest first, after the position ``after``."""
        statement = select(Event).where(Event.workspace_id == query.workspace_id)
        if query.use_case_id is not None or query.from_domain is not None:
            scope = select(Delivery.id).where(
                Delivery.id == Event.delivery_id, Delivery.workspace_id == query.workspace_id
            )
            if query.use_case_id is not None:
                scope = scope.where(Delivery.use_case_id == query.use_case_id)
            if query.from_domain is not None:
                scope = scope.where(Delivery.from_domain == query.from_domain)
            statement = statement.where(exists(scope))
        if query.delivery_ids:
            statement = statement.where(Event.delivery_id.in_(query.delivery_ids))
        if query.types:
            statement = statement.where(Event.type.in_(query.types))
        if query.after is not None:
            statement = statement.where(Event.occurred_at >= query.after)
        if query.before is not None:
            statement = statement.where(Event.occurred_at < query.before)
        if after is not None:
            statement = statement.where(tuple_(Event.occurred_at, Event.id) > tuple_(*after))
        statement = statement.order_by(Event.occurred_at, Event.id).limit(limit)
        return list(await self.session.scalars(statement))

    async def feed(
        self,
        *,
        workspace_id: uuid.UUID,
        sender_id: uuid.UUID,
        after: feed.Position | None,
        limit: int,
    ) -> list[FeedEvent]:
        """The sender's events in the polling feed's order (db/feed.py)."""
        dialect = self._dialect
        order = feed.order(dialect)
        statement = (
            select(Event, Delivery.recipient, *order)
            .join(Message, Message.id == Event.message_id)
            .outerjoin(Delivery, Delivery.id == Event.delivery_id)
            .where(
                Event.workspace_id == workspace_id,
                Message.sender_id == sender_id,
                feed.visible(dialect),
            )
        )
        if after is not None:
            statement = statement.where(feed.after(dialect, after))
        statement = statement.order_by(*order).limit(limit)
        return [
            FeedEvent(row[0], row[1], feed.position_of(dialect, tuple(row[2:])))
            for row in await self.session.execute(statement)
        ]

    # Messages: the native history.

    async def messages(
        self, query: MessageQuery, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Message]:
        """Up to ``limit`` of the sender's messages, newest first."""
        statement = (
            select(Message)
            .options(defer(Message.html), defer(Message.text))
            .where(Message.workspace_id == query.workspace_id, Message.sender_id == query.sender_id)
        )
        copies = select(Delivery.id).where(Delivery.message_id == Message.id)
        if query.recipients:
            statement = statement.where(
                exists(copies.where(Delivery.recipient.in_(query.recipients)))
            )
        if query.states:
            statement = statement.where(exists(copies.where(Delivery.state.in_(query.states))))
        if query.sent_after is not None:
            statement = statement.where(Message.created_at >= query.sent_after)
        if query.sent_before is not None:
            statement = statement.where(Message.created_at < query.sent_before)
        if query.subject_contains:
            pattern = "%" + _escape_like(query.subject_contains.lower()) + "%"
            statement = statement.where(func.lower(Message.subject).like(pattern, escape="\\"))
        if before is not None:
            statement = statement.where(tuple_(Message.created_at, Message.id) < tuple_(*before))
        statement = statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
        return list(await self.session.scalars(statement))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
