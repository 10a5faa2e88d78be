"""SQL for messages, their attachments and deliveries."""

import uuid
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import ColumnDefault, Insert, Table, bindparam, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from posthouse.db.base import Base
from posthouse.db.models import Attachment, Delivery, Message


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


def _row(instance: Base) -> dict[str, Any]:
    """An instance's column values for an INSERT; Python-side column defaults are applied
    to the instance too, so it reads as it would after a flush."""
    values: dict[str, Any] = {}
    state = instance.__dict__
    for key, column, default in _columns(type(instance)):
        if key not in state:
            value = None
            if default is not None:
                value = default.arg(None) if default.is_callable else default.arg
            setattr(instance, key, value)
        values[column] = state[key]
    return values


# Statements with a multi-row VALUES are not cached by SQLAlchemy's compiler, so the
# combined insert has one single-row INSERT per row, and is used up to this many rows.
_COMBINED_MAX_ROWS = 16


def _single_row_insert(table: Table, prefix: str) -> Insert:
    return insert(table).values(
        {c.name: bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.columns}
    )


@lru_cache(maxsize=_COMBINED_MAX_ROWS * 8)
def _combined_statement(attachments: int, deliveries: int) -> Insert:
    """PostgreSQL: ``WITH m AS (INSERT message), a0 AS (INSERT attachment), ...,
    INSERT delivery``, built once per shape and compiled once by SQLAlchemy."""
    statement = _single_row_insert(Delivery.__table__, "d0_")
    ctes = [_single_row_insert(Message.__table__, "m_").cte("m")]
    ctes += [
        _single_row_insert(Attachment.__table__, f"a{i}_").cte(f"a{i}") for i in range(attachments)
    ]
    ctes += [
        _single_row_insert(Delivery.__table__, f"d{i}_").cte(f"d{i}") for i in range(1, deliveries)
    ]
    return statement.add_cte(*ctes)


def _combined_insert(
    message: dict[str, Any], attachments: list[dict[str, Any]], deliveries: list[dict[str, Any]]
) -> tuple[Insert, dict[str, Any]]:
    params = {f"m_{name}": value for name, value in message.items()}
    for prefix, rows in (("a", attachments), ("d", deliveries)):
        for index, row in enumerate(rows):
            params.update({f"{prefix}{index}_{name}": value for name, value in row.items()})
    return _combined_statement(len(attachments), len(deliveries)), params


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, message: Message, attachments: list[Attachment], deliveries: list[Delivery]
    ) -> None:
        """Insert a message with its files and queue rows, in that order (there are no ORM
        relationships to order them). Core inserts rather than the unit of work: this runs
        for every accepted email, and a flush costs more CPU than the statements. The
        objects stay transient, with their defaults filled in as a flush would."""
        message_row = _row(message)
        attachment_rows = [_row(a) for a in attachments]
        delivery_rows = [_row(d) for d in deliveries]
        combined = 0 < len(attachment_rows) + len(delivery_rows) <= _COMBINED_MAX_ROWS
        if self.session.bind.dialect.name == "postgresql" and delivery_rows and combined:
            # One statement, so one round trip: the foreign keys are checked at its end.
            statement, params = _combined_insert(message_row, attachment_rows, delivery_rows)
            await self.session.execute(statement, params)
            return
        await self.session.execute(insert(Message.__table__), message_row)
        if attachment_rows:
            await self.session.execute(insert(Attachment.__table__), attachment_rows)
        if delivery_rows:
            await self.session.execute(insert(Delivery.__table__), delivery_rows)

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
