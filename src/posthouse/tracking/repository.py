"""SQL for engagement: recorded links, what a tracking hit needs to know, and counts."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db import dialect
from posthouse.db.arrays import insert_rows
from posthouse.db.models import Attachment, Delivery, Event, Message, TrackedLink
from posthouse.events.types import EventType


@dataclass(frozen=True)
class TrackedDelivery:
    """A delivery as a tracking hit sees it."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    message_id: uuid.UUID
    recipient: str
    sent_at: datetime | None
    use_case_id: uuid.UUID | None
    unsubscribe_redirect_url: str | None


_DELIVERY_COLUMNS = (
    Delivery.id,
    Delivery.workspace_id,
    Delivery.message_id,
    Delivery.recipient,
    Delivery.sent_at,
    Delivery.use_case_id,
)


def _tracked(row: Any, *, redirect: str | None) -> TrackedDelivery:
    """A TrackedDelivery from a row that starts with _DELIVERY_COLUMNS."""
    return TrackedDelivery(row[0], row[1], row[2], row[3], row[4], row[5], redirect)


@dataclass(frozen=True)
class Engagement:
    """Seed 004's counters and times for a message; machine hits left out."""

    open_count: int
    click_count: int
    first_open_at: datetime | None
    last_open_at: datetime | None
    first_click_at: datetime | None
    last_click_at: datetime | None
    machine_count: int


class TrackingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def autocommit(self) -> None:
        """On PostgreSQL, let each statement of this session commit on its own, unless
        the session has begun already. A hit reads what it needs and stores one event;
        nothing in it must be read consistently with anything else, and the BEGIN and
        COMMIT round trips were half the work of a pixel hit."""
        if dialect.is_postgresql(self.session) and not self.session.in_transaction():
            await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    def _insert_links(self) -> Insert:
        table = dialect.table_of(TrackedLink)
        insert = dialect.insert(dialect.name_of(self.session), table)
        return insert.on_conflict_do_nothing(index_elements=["delivery_id", "position"])

    async def add_links(self, rows: list[dict[str, Any]]) -> None:
        """Record link targets; a retry's copy records the same rows again, ignored."""
        await insert_rows(
            self.session,
            dialect.table_of(TrackedLink),
            rows,
            elsewhere=self._insert_links(),
            ignore_conflicts_on="delivery_id, position",
        )

    async def delivery(
        self, delivery_id: uuid.UUID, *, with_redirect: bool = False
    ) -> TrackedDelivery | None:
        """The delivery; ``with_redirect``: and where its message's unsubscribe redirects."""
        if with_redirect:
            query: Any = select(*_DELIVERY_COLUMNS, Message.unsubscribe_redirect_url).join(
                Message, Message.id == Delivery.message_id
            )
        else:
            query = select(*_DELIVERY_COLUMNS)
        row = (await self.session.execute(query.where(Delivery.id == delivery_id))).one_or_none()
        if row is None:
            return None
        return _tracked(row, redirect=row[6] if with_redirect else None)

    async def delivery_and_attachment(
        self, delivery_id: uuid.UUID, position: int
    ) -> tuple[TrackedDelivery, Attachment] | None:
        """The delivery and its message's tracked attachment at ``position``."""
        row = (
            await self.session.execute(
                select(*_DELIVERY_COLUMNS, Attachment)
                .join(
                    Attachment,
                    and_(
                        Attachment.message_id == Delivery.message_id,
                        Attachment.position == position,
                        Attachment.track.is_(True),
                    ),
                )
                .where(Delivery.id == delivery_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return _tracked(row, redirect=None), row[6]  # after _DELIVERY_COLUMNS

    async def engagement(self, message_id: uuid.UUID) -> Engagement:
        machine = Event.data["machine"].as_boolean()
        human = func.coalesce(machine, False).is_(False)

        def times(kind: EventType) -> list[Any]:
            wanted = and_(Event.type == str(kind), human)
            return [
                func.count(case((wanted, 1))),
                func.min(case((wanted, Event.occurred_at))),
                func.max(case((wanted, Event.occurred_at))),
            ]

        row: Any = (
            await self.session.execute(
                select(
                    *times(EventType.OPEN),
                    *times(EventType.CLICK),
                    func.count(case((func.coalesce(machine, False).is_(True), 1))),
                ).where(
                    Event.message_id == message_id,
                    Event.type.in_([str(EventType.OPEN), str(EventType.CLICK)]),
                )
            )
        ).one()
        opens, first_open, last_open, clicks, first_click, last_click, machines = row
        return Engagement(opens, clicks, first_open, last_open, first_click, last_click, machines)
