"""All SQL of the history: lists with keyset paging, details, events, the feed.

Seed 004's email is one recipient's copy: a ``delivery`` row with its ``message``. Lists
run newest first on (created_at, id), one index range each (see the delivery indexes in
db/models.py); events run oldest first on (occurred_at, id)."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from posthouse.db import feed
from posthouse.db.dialect import dialect_of
from posthouse.db.models import Attachment, Delivery, Domain, Event, Message, UseCase
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
    setup_id: uuid.UUID | None
    open_count: int
    click_count: int


@dataclass(frozen=True)
class FeedEvent:
    event: Event
    recipient: str | None
    position: list[Any] = field(default_factory=list)


def _machine() -> ColumnElement[bool]:
    """Open/Click events a machine (a mail scanner, a proxy) caused: left out of counts."""
    return func.coalesce(Event.data["machine"].as_boolean(), false())


def _count(kind: EventType) -> Any:
    """How many events of ``kind`` the row's delivery has (ix_event_delivery_id)."""
    return (
        select(func.count())
        .where(Event.delivery_id == Delivery.id, Event.type == kind, ~_machine())
        .correlate(Delivery)
        .scalar_subquery()
    )


# An email as the lists show it, in one statement: its setup (the workspace's domain of
# that name, if any) and its open and click counts come with it.
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
    Domain.id,
    _count(EventType.OPEN),
    _count(EventType.CLICK),
)


def _decided(states: tuple[str, ...]) -> ColumnElement[bool]:
    # Repeats what the partial state indexes require, so SQLite's planner (which only
    # matches a partial index's WHERE term literally) can use them too.
    return Delivery.state != "sent" if "sent" not in states else true()


_Select = TypeVar("_Select", bound=Select[*tuple[Any, ...]])


def _with_setup(statement: _Select) -> _Select:
    return statement.join(Message, Message.id == Delivery.message_id).outerjoin(
        Domain,
        and_(Domain.workspace_id == Delivery.workspace_id, Domain.name == Delivery.from_domain),
    )


class HistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> Dialect:
        return dialect_of(self.session)

    # Emails: one recipient's copy each.

    def _emails(self, query: EmailQuery) -> Select[Any]:
        statement = _with_setup(select(*_EMAIL_COLUMNS))
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

    def email_page(
        self, query: EmailQuery, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Select[Any]:
        """The statement of one page: newest first, older than the position ``before``."""
        statement = self._emails(query)
        if before is not None:
            statement = statement.where(tuple_(Delivery.created_at, Delivery.id) < tuple_(*before))
        return statement.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)

    async def emails(
        self, query: EmailQuery, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[EmailRow]:
        statement = self.email_page(query, before=before, limit=limit)
        return [EmailRow(*row) for row in await self.session.execute(statement)]

    async def email(self, workspace_id: uuid.UUID, delivery_id: uuid.UUID) -> EmailRow | None:
        row = (
            await self.session.execute(
                _with_setup(select(*_EMAIL_COLUMNS)).where(
                    Delivery.id == delivery_id, Delivery.workspace_id == workspace_id
                )
            )
        ).first()
        return None if row is None else EmailRow(*row)

    async def detail(
        self, workspace_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> tuple[Delivery, Message, uuid.UUID | None, str | None] | None:
        """The delivery, its message, its setup's id and its use case's type."""
        row = (
            await self.session.execute(
                _with_setup(select(Delivery, Message, Domain.id, UseCase.type))
                .outerjoin(UseCase, UseCase.id == Delivery.use_case_id)
                .where(Delivery.id == delivery_id, Delivery.workspace_id == workspace_id)
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def setup_name(self, workspace_id: uuid.UUID, domain_id: uuid.UUID) -> str | None:
        return await self.session.scalar(
            select(Domain.name).where(Domain.id == domain_id, Domain.workspace_id == workspace_id)
        )

    async def message(self, message_id: uuid.UUID) -> Message:
        message = await self.session.get(Message, message_id)
        assert message is not None  # a delivery's message is never deleted
        return message

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

    # Copies of a workspace's messages by their external id (seed 003's X-Unique-Id).

    async def copies_by_external_id(
        self, workspace_id: uuid.UUID, external_id: str, *, offset: int, limit: int
    ) -> list[tuple[Delivery, Message]]:
        """Each recipient's copy of the workspace's messages with this external id, in
        the order they were accepted (ix_message_workspace_external)."""
        statement = (
            select(Delivery, Message)
            .join(Message, Message.id == Delivery.message_id)
            .where(Message.workspace_id == workspace_id, Message.external_id == external_id)
            .order_by(Message.created_at, Message.id, Delivery.id)
            .offset(offset)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in await self.session.execute(statement)]

    async def attachment_bytes(self, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The size of each message's files together (messages without any are absent)."""
        if not message_ids:
            return {}
        rows = await self.session.execute(
            select(Attachment.message_id, func.sum(Attachment.size))
            .where(Attachment.message_id.in_(message_ids))
            .group_by(Attachment.message_id)
        )
        return {row[0]: int(row[1] or 0) for row in rows}

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
