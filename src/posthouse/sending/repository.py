"""SQL for messages, their attachments and deliveries."""

import uuid
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnDefault,
    ColumnElement,
    Insert,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, defer

from posthouse.addresses import address_key
from posthouse.db import dialect as db_dialect
from posthouse.db.base import Base
from posthouse.db.driver_sql import DriverStatement, compile_for_driver
from posthouse.db.models import Attachment, Delivery, Message
from posthouse.protections.repositories.suppression import (
    ACTIVE_SUPPRESSIONS_PG,
    SuppressionRepository,
    suppression_parameters,
)


@cache
def _columns(model: type[Base]) -> tuple[tuple[str, str, ColumnDefault | None], ...]:
    """(attribute, column, Python-side default) of each column of a model."""
    return tuple(
        (
            attribute.key,
            attribute.columns[0].key,
            default if isinstance(default := attribute.columns[0].default, ColumnDefault) else None,
        )
        for attribute in sa_inspect(model).column_attrs
    )


def row(model: type[Base], **values: Any) -> dict[str, Any]:
    """A ``model`` row for an INSERT, by column name: ``values`` (by attribute name) with
    the Python-side column defaults a flush would apply filled in."""
    result: dict[str, Any] = {}
    for key, column, default in _columns(model):
        if key in values:
            result[column] = values[key]
        elif default is not None:
            result[column] = default.arg(None) if default.is_callable else default.arg
        else:
            result[column] = None
    return result


# The combined insert has one single-row INSERT per row and is compiled once per shape
# (rows of each kind), so it is used up to this many rows; bigger sends take plain inserts.
_COMBINED_MAX_ROWS = 16


def _row_insert_unless(table: Table, prefix: str, unless: ColumnElement[bool]) -> Insert:
    """INSERT of one row of bound values that inserts nothing when ``unless`` holds."""
    columns = list(table.columns)
    values = select(*(bindparam(f"{prefix}{c.name}", type_=c.type) for c in columns))
    return insert(table).from_select(columns, values.where(~unless))


@lru_cache(maxsize=_COMBINED_MAX_ROWS * 4)
def _combined_statement(attachments: int, deliveries: int, dialect: Dialect) -> DriverStatement:
    """PostgreSQL: ``WITH s AS (SELECT suppressed), m AS (INSERT message), a0 AS (INSERT
    attachment), ..., d0 AS (INSERT delivery), ... SELECT s.address``, built and compiled
    once per shape.

    ``s`` is the recipients suppressed now (for the whole workspace or the message's use
    case); each delivery is inserted unless its
    recipient is among them, the message and its files unless all of them are, and the
    statement answers with them. So the suppression check costs no round trip of its
    own, and a send with a suppressed recipient is still one statement.

    It runs as driver SQL because SQLAlchemy's work on each execution of a compiled
    statement (an execution context, 40 to 60 parameters processed by name) was about 5%
    of the api's CPU per accepted send."""
    suppressed = ACTIVE_SUPPRESSIONS_PG.cte("s")
    # The recipients are distinct and ``s`` names each suppressed address once (it is
    # DISTINCT: an address may be suppressed workspace-wide and for the use case), so
    # "all suppressed" is a count.
    everyone = select(func.count()).select_from(suppressed).scalar_subquery() >= literal_column(
        str(deliveries)
    )
    delivery = db_dialect.table_of(Delivery)
    inserts = [_row_insert_unless(db_dialect.table_of(Message), "m_", everyone).cte("m")]
    inserts += [
        _row_insert_unless(db_dialect.table_of(Attachment), f"a{i}_", everyone).cte(f"a{i}")
        for i in range(attachments)
    ]
    inserts += [
        _row_insert_unless(
            delivery,
            f"d{i}_",
            select(suppressed.c.address)
            # d{i}_key: the recipient's address_key(), the form suppressions are kept in.
            .where(suppressed.c.address == bindparam(f"d{i}_key", type_=Text()))
            .exists(),
        ).cte(f"d{i}")
        for i in range(deliveries)
    ]
    statement = select(suppressed.c.address).add_cte(suppressed, *inserts)
    return compile_for_driver(statement, dialect)


def _combined_values(
    message: dict[str, Any],
    attachments: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    suppression: dict[str, Any],
) -> dict[str, Any]:
    values = {f"m_{name}": value for name, value in message.items()}
    for prefix, rows in (("a", attachments), ("d", deliveries)):
        for index, row in enumerate(rows):
            values.update({f"{prefix}{index}_{name}": value for name, value in row.items()})
    for index, row in enumerate(deliveries):
        values[f"d{index}_key"] = address_key(row["recipient"])
    values.update(suppression)
    return values


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _run_driver_sql(
    session: Session, sql: str, arguments: tuple[Any, ...], *, autocommit: bool
) -> list[Any]:
    """Run ``sql`` in the session's transaction, or, with ``autocommit``, on a connection
    that commits it on its own (the session must not have begun). The first column of
    each row it returns."""
    connection = session.connection(execution_options=_AUTOCOMMIT if autocommit else None)
    return list(connection.exec_driver_sql(sql, arguments).scalars())


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        message_row: dict[str, Any],
        attachment_rows: list[dict[str, Any]],
        delivery_rows: list[dict[str, Any]],
        *,
        now: datetime,
        last_write: bool = False,
    ) -> set[str]:
        """Insert a message with its files and queue rows (``row()``s), in that order
        (there are no ORM relationships to order them), leaving out the deliveries whose
        recipient is suppressed now; the message and its files only if a delivery is
        left. Returns the suppressed recipients. Core inserts rather than the unit of
        work: this runs for every accepted email, and building ORM instances and a flush
        cost more CPU than the statements.

        ``last_write``: the caller writes nothing after this. Then, on PostgreSQL, if the
        transaction has not begun (nothing read or written yet), the combined insert runs
        autocommitted: one statement is atomic on its own, and it saves the BEGIN and
        COMMIT round trips, about a tenth of the api's CPU per accepted send."""
        workspace_id = message_row["workspace_id"]
        # Entries scoped to the message's use case count as well as workspace-wide ones.
        use_case_id = message_row["use_case_id"]
        recipients = [d["recipient"] for d in delivery_rows]
        # Suppressions are matched by address_key(); the answer names recipients as given.
        keys = [address_key(r) for r in recipients]
        if (
            db_dialect.is_postgresql(self.session)
            and len(attachment_rows) + len(delivery_rows) <= _COMBINED_MAX_ROWS
        ):
            # One statement, so one round trip: the foreign keys are checked at its end.
            statement = _combined_statement(
                len(attachment_rows), len(delivery_rows), db_dialect.dialect_of(self.session)
            )
            values = _combined_values(
                message_row,
                attachment_rows,
                delivery_rows,
                suppression_parameters(workspace_id, keys, use_case_id=use_case_id, now=now),
            )
            # One call into the synchronous session: taking the connection and running
            # the statement as two awaited calls would start two greenlets.
            returned = await self.session.run_sync(
                _run_driver_sql,
                statement.sql,
                statement.arguments(values),
                autocommit=last_write and not self.session.in_transaction(),
            )
            found = set(returned)
            return {r for r, key in zip(recipients, keys, strict=True) if key in found}
        found = await SuppressionRepository(self.session).active_among(
            workspace_id, keys, use_case_id=use_case_id, now=now
        )
        suppressed = {r for r, key in zip(recipients, keys, strict=True) if key in found}
        deliveries = [d for d in delivery_rows if d["recipient"] not in suppressed]
        if not deliveries:
            return suppressed
        await self.session.execute(insert(db_dialect.table_of(Message)), message_row)
        if attachment_rows:
            await self.session.execute(insert(db_dialect.table_of(Attachment)), attachment_rows)
        await self.session.execute(insert(db_dialect.table_of(Delivery)), deliveries)
        return suppressed

    async def get(self, message_id: uuid.UUID, *, workspace_id: uuid.UUID) -> Message | None:
        return await self.session.scalar(
            select(Message).where(Message.id == message_id, Message.workspace_id == workspace_id)
        )

    async def latest_by_subject(self, *, sender_id: uuid.UUID, subject_key: str) -> Message | None:
        return await self.session.scalar(
            select(Message)
            .where(Message.sender_id == sender_id, Message.subject_key == subject_key)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )

    async def deliveries(self, message_id: uuid.UUID) -> list[Delivery]:
        rows = await self.session.scalars(
            select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)
        )
        return list(rows)

    async def attachments_without_data(self, message_id: uuid.UUID) -> list[Attachment]:
        rows = await self.session.scalars(
            select(Attachment)
            .options(defer(Attachment.data, raiseload=True))
            .where(Attachment.message_id == message_id)
            .order_by(Attachment.position)
        )
        return list(rows)
