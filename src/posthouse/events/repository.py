"""SQL for events. Inserts are idempotent on ``dedupe_key``."""

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    Insert,
    Uuid,
    bindparam,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.util import greenlet_spawn

from posthouse.db import dialect
from posthouse.db.arrays import insert_rows
from posthouse.db.base import UTCDateTime
from posthouse.db.driver_sql import DriverStatement, compile_for_driver, fetch_one_autocommitted
from posthouse.db.models import Delivery, Event
from posthouse.events.types import lower_states


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert_ignoring_duplicates(self) -> Insert:
        # The table, not the mapped class: the worker stores an event per attempt, and the
        # ORM's bulk insert adds per-row work (attribute expansion, annotations) to it.
        statement = dialect.insert(dialect.name_of(self.session), dialect.table_of(Event))
        return statement.on_conflict_do_nothing(index_elements=["dedupe_key"])

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        await insert_rows(
            self.session,
            dialect.table_of(Event),
            rows,
            elsewhere=self._insert_ignoring_duplicates(),
            ignore_conflicts_on="dedupe_key",
        )

    async def add_many_returning_ids(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Like add_many; returns the ids of the rows actually stored (not duplicates)."""
        stored: set[uuid.UUID] = set()
        for row in rows:
            inserted = await self.session.scalar(
                self._insert_ignoring_duplicates().returning(dialect.table_of(Event).c.id), row
            )
            if inserted is not None:
                stored.add(inserted)
        return stored

    async def recipients(
        self, delivery_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[str, uuid.UUID | None]]:
        """Each delivery's recipient and the use case its mail went through."""
        if not delivery_ids:
            return {}
        rows = await self.session.execute(
            select(Delivery.id, Delivery.recipient, Delivery.use_case_id).where(
                Delivery.id.in_(delivery_ids)
            )
        )
        return {row.id: (row.recipient, row.use_case_id) for row in rows}

    async def raise_states(self, state: str, delivery_ids: list[uuid.UUID]) -> None:
        """Set the deliveries' derived state to ``state`` where it takes precedence."""
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.state.in_(lower_states(state)))
            .values(state=state)
            .execution_options(synchronize_session=False)
        )


class HitRepository:
    """The writes of tracking hits, each one statement on a pooled connection of its own,
    outside any ORM session, in one greenlet from checkout to checkin. On PostgreSQL the
    statement, compiled once, is run by asyncpg outside any transaction, so it commits on
    its own (db.driver_sql); on SQLite it is a transaction of its own. A hit reads and
    writes nothing that must be consistent with anything else, and the session's and
    SQLAlchemy's work around its one statement was most of a hit's cost
    (bench/README.md, tracking.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.dialect_name = dialect.name_of(engine)
        self.postgresql = dialect.is_postgresql(engine)

    async def _one(self, statement: Executable, row: dict[str, Any]) -> Any:
        """The first row ``statement`` returns (indexable by position), or None."""
        if self.postgresql:
            compiled = _for_driver(statement, self.engine.dialect)
            return await greenlet_spawn(fetch_one_autocommitted, self.engine, compiled, row)
        return await greenlet_spawn(_in_transaction, self.engine, statement, row)

    async def add_for_delivery(self, row: dict[str, Any]) -> bool:
        """Insert one event whose workspace and message are its delivery's, read by the
        same statement; False (nothing stored) when there is no such delivery."""
        return await self._one(_EVENT_FOR_DELIVERY, row) is not None

    async def add_for_link(self, row: dict[str, Any]) -> tuple[str, datetime | None] | None:
        """Insert one event for a delivery and the link recorded at ``position``, its URL
        added to the event's data, in one statement; the URL and when the delivery was
        sent, or None (nothing stored) when no such link was recorded."""
        found = await self._one(_event_for_link(self.dialect_name), row)
        if found is None:
            return None
        data: dict[str, Any] = found[0]
        sent = data.get("delivered_at")
        sent_at = datetime.fromisoformat(sent) if sent else None
        if sent_at is not None and sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=UTC)  # SQLite keeps UTC times without a zone
        return data["url"], sent_at

    async def replace_data(self, event_id: uuid.UUID, data: dict[str, Any]) -> None:
        await self._one(_REPLACE_DATA, {"b_id": event_id, "b_data": data})


def _in_transaction(engine: Engine, statement: Executable, row: dict[str, Any]) -> Any:
    with engine.begin() as connection:
        return connection.execute(statement, row).first()


@cache
def _for_driver(statement: Executable, dialect: Dialect) -> DriverStatement:
    assert isinstance(statement, ClauseElement)
    return compile_for_driver(statement, dialect)


def _event_for_delivery() -> Insert:
    event, delivery = dialect.table_of(Event), dialect.table_of(Delivery)
    bound = ("id", "type", "occurred_at", "received_at", "data", "dedupe_key")
    values = {name: bindparam(name, type_=event.c[name].type) for name in bound}
    source = select(
        values["id"],
        delivery.c.workspace_id,
        delivery.c.message_id,
        delivery.c.id,
        *(values[name] for name in bound[1:]),
    ).where(delivery.c.id == bindparam("delivery_id", type_=delivery.c.id.type))
    columns = ["id", "workspace_id", "message_id", "delivery_id", *bound[1:]]
    return insert(event).from_select(columns, source).returning(literal_column("1"))


_EVENT_FOR_DELIVERY = _event_for_delivery()
_event = dialect.table_of(Event)
_REPLACE_DATA = (
    update(_event)
    .where(_event.c.id == bindparam("b_id"))
    .values(data=bindparam("b_data", type_=_event.c.data.type))
    .returning(_event.c.id)
)


@cache
def _event_for_link(name: str) -> TextualSelect:
    # The URL and the delivery's send time join the data given (RETURNING sees only the
    # event's own columns).
    data = dialect.json_with(name, ":data", {"url": "l.url", "delivered_at": "d.sent_at"})
    return (
        text(
            "INSERT INTO event (id, workspace_id, message_id, delivery_id, type, occurred_at,"
            " received_at, data, dedupe_key)"
            " SELECT :id, d.workspace_id, d.message_id, d.id, :type, :occurred_at,"
            f" :received_at, {data}, :dedupe_key"
            " FROM delivery d JOIN tracked_link l"
            " ON l.delivery_id = d.id AND l.position = :position"
            " WHERE d.id = :delivery_id"
            " RETURNING data"
        )
        .bindparams(
            bindparam("id", type_=Uuid()),
            bindparam("delivery_id", type_=Uuid()),
            bindparam("occurred_at", type_=UTCDateTime()),
            bindparam("received_at", type_=UTCDateTime()),
            bindparam("data", type_=JSON()),
        )
        .columns(data=JSON())
    )
