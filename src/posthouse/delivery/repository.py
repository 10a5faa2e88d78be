"""SQL for the delivery queue: claims with leases, contents, outcomes."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    TextClause,
    Update,
    bindparam,
    case,
    delete,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db import dialect as db_dialect
from posthouse.db.arrays import column_arrays, insert_rows, unnested
from posthouse.db.models import (
    Attachment,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    DestinationBlock,
    Message,
)
from posthouse.delivery.classify import Verdict

_delivery = db_dialect.table_of(Delivery)


# The claim and the outcome update are built once: they run for every batch, and building
# a statement (and its cache key) costs more CPU than running it.
_DUE = (
    select(_delivery.c.id)
    # Literal statuses so PostgreSQL can use the partial index ix_delivery_due.
    .where(
        text("status IN ('queued', 'deferred')"),
        _delivery.c.next_attempt_at <= bindparam("b_now"),
    )
    .order_by(_delivery.c.next_attempt_at)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(_delivery)
    .where(_delivery.c.id.in_(_DUE.scalar_subquery()))
    .values(
        status=DeliveryStatus.SENDING,
        attempts=_delivery.c.attempts + 1,
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_lease_until"),
        last_attempt_at=bindparam("b_now"),
    )
    .returning(
        _delivery.c.id,
        _delivery.c.message_id,
        _delivery.c.workspace_id,
        _delivery.c.recipient,
        _delivery.c.attempts,
        _delivery.c.expires_at,
        _delivery.c.tracking_token,
        _delivery.c.use_case_id,
    )
)
_RECORD = (
    update(_delivery)
    .where(
        _delivery.c.id == bindparam("b_id"),
        _delivery.c.lease_owner == bindparam("b_owner"),
        # The attempt number tells this claim from a later one by the same worker.
        _delivery.c.attempts == bindparam("b_attempts"),
        text("status = 'sending'"),
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        last_smtp_code=bindparam("b_code"),
        last_smtp_reply=bindparam("b_reply"),
        failure_class=bindparam("b_class"),
        failure_subclass=bindparam("b_subclass"),
        sent_at=bindparam("b_sent_at"),
        updated_at=bindparam("b_updated_at"),
        lease_owner=None,
        lease_expires_at=None,
    )
)


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    message_id: uuid.UUID
    workspace_id: uuid.UUID
    recipient: str
    attempts: int  # including the one this claim starts
    expires_at: datetime
    tracking_token: str
    use_case_id: uuid.UUID | None  # its use case's suppressions apply too


class QueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def release_expired_leases(self, *, now: datetime) -> int:
        """Deliveries whose worker died mid-send become due again."""
        result = await self.session.execute(
            update(_delivery)
            .where(text("status = 'sending'"), _delivery.c.lease_expires_at <= now)
            .values(
                status=DeliveryStatus.DEFERRED,
                next_attempt_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return db_dialect.rowcount(result)

    async def claim(
        self, *, owner: str, limit: int, now: datetime, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries. PostgreSQL skips rows other workers hold;
        SQLite's BEGIN IMMEDIATE makes the whole claim one writer at a time."""
        rows = await self.session.execute(
            _CLAIM,
            {"b_now": now, "b_limit": limit, "b_owner": owner, "b_lease_until": now + lease},
        )
        return [ClaimedDelivery(*row) for row in rows]

    async def renew_leases(
        self, *, owner: str, delivery_ids: Sequence[uuid.UUID], until: datetime
    ) -> None:
        """Extend this worker's leases on deliveries it still holds."""
        await self.session.execute(
            update(_delivery)
            .where(
                _delivery.c.id.in_(delivery_ids),
                _delivery.c.lease_owner == owner,
                text("status = 'sending'"),
            )
            .values(lease_expires_at=until)
        )

    async def give_back(
        self, *, owner: str, delivery_ids: Sequence[uuid.UUID], now: datetime
    ) -> int:
        """Undo this worker's claim of deliveries it never started to send (it is
        stopping): due at once for any worker, the claim's attempt not counted."""
        if not delivery_ids:
            return 0
        first = _delivery.c.attempts == 1
        result = await self.session.execute(
            update(_delivery)
            .where(
                _delivery.c.id.in_(delivery_ids),
                _delivery.c.lease_owner == owner,
                text("status = 'sending'"),
            )
            .values(
                status=case((first, DeliveryStatus.QUEUED), else_=DeliveryStatus.DEFERRED),
                attempts=_delivery.c.attempts - 1,
                last_attempt_at=case((first, None), else_=_delivery.c.last_attempt_at),
                next_attempt_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return db_dialect.rowcount(result)

    async def contents(
        self, message_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Message, list[Attachment]]]:
        messages = await self.session.scalars(select(Message).where(Message.id.in_(message_ids)))
        result: dict[uuid.UUID, tuple[Message, list[Attachment]]] = {
            m.id: (m, []) for m in messages
        }
        attachments = await self.session.scalars(
            select(Attachment)
            .where(Attachment.message_id.in_(message_ids))
            .order_by(Attachment.message_id, Attachment.position)
        )
        for attachment in attachments:
            result[attachment.message_id][1].append(attachment)
        return result

    async def record_outcomes(self, *, owner: str, updates: list[dict[str, Any]]) -> None:
        """Apply outcomes to the claims this worker still holds. A delivery whose lease
        expired and was claimed again (by another worker, or by this one: the attempt
        number differs) is left to its new claim."""
        if not updates:
            return
        dialect = db_dialect.dialect_of(self.session)
        if dialect.name != db_dialect.POSTGRESQL:
            await self.session.execute(_RECORD, [{**row, "b_owner": owner} for row in updates])
            return
        # One statement for the batch (db/arrays.py).
        rows = [{column: row[f"b_{key}"] for key, column in _OUTCOME.items()} for row in updates]
        arrays = column_arrays(_delivery, rows, dialect, tuple(_OUTCOME.values()))
        await self.session.execute(_record_all(dialect), {**arrays, "owner": owner})

    async def add_attempts(self, attempts: list[dict[str, Any]]) -> None:
        table = db_dialect.table_of(DeliveryAttempt)
        await insert_rows(self.session, table, attempts, elsewhere=insert(table))


class BlockRepository:
    """Destinations that block a workspace's mail from one of its sending domains."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, rows: list[dict[str, Any]]) -> None:
        """Add blocks, or refresh one already stored (its ``since`` stays)."""
        if not rows:
            return
        statement = db_dialect.insert(db_dialect.name_of(self.session), DestinationBlock)
        statement = statement.on_conflict_do_update(
            index_elements=["workspace_id", "sending_domain", "destination"],
            set_={
                "last_seen_at": statement.excluded.last_seen_at,
                "subclass": statement.excluded.subclass,
                "smtp_code": statement.excluded.smtp_code,
                "reply": statement.excluded.reply,
            },
        )
        await self.session.execute(statement, rows)

    async def clear(self, keys: list[tuple[uuid.UUID, str, str]]) -> None:
        """Forget blocks once mail from the same workspace and domain got through."""
        if not keys:
            return
        table = db_dialect.table_of(DestinationBlock)
        await self.session.execute(
            delete(table).where(
                tuple_(table.c.workspace_id, table.c.sending_domain, table.c.destination).in_(keys)
            )
        )

    async def of(
        self, workspace_id: uuid.UUID, *, sending_domain: str | None = None
    ) -> list[DestinationBlock]:
        statement = select(DestinationBlock).where(DestinationBlock.workspace_id == workspace_id)
        if sending_domain is not None:
            statement = statement.where(DestinationBlock.sending_domain == sending_domain)
        rows = await self.session.scalars(
            statement.order_by(DestinationBlock.since, DestinationBlock.destination)
        )
        return list(rows)


# An outcome's keys (as record_outcomes takes them, after "b_") and the delivery columns
# they set.
_OUTCOME = {
    "id": "id",
    "attempts": "attempts",
    "status": "status",
    "next_attempt_at": "next_attempt_at",
    "code": "last_smtp_code",
    "reply": "last_smtp_reply",
    "class": "failure_class",
    "subclass": "failure_subclass",
    "sent_at": "sent_at",
    "updated_at": "updated_at",
}


@cache
def _record_all(dialect: Dialect) -> TextClause:
    """_RECORD for a whole batch on PostgreSQL, with the same fence."""
    assignments = ", ".join(
        f"{column} = o.{column}" for column in _OUTCOME.values() if column not in ("id", "attempts")
    )
    return text(
        f"UPDATE delivery AS d SET {assignments}, lease_owner = NULL, lease_expires_at = NULL"
        f" FROM {unnested(_delivery, tuple(_OUTCOME.values()), dialect)}"
        " WHERE d.id = o.id AND d.lease_owner = :owner AND d.attempts = o.attempts"
        " AND d.status = 'sending'"
    )


class DeliveryStateRepository:
    """Status changes outside the worker's send-and-record loop: the send-time gate,
    held mail released, a delivery returned after it was sent."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stop(
        self, delivery_ids: list[uuid.UUID], *, status: DeliveryStatus, reply: str, now: datetime
    ) -> None:
        if not delivery_ids:
            return
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .values(
                status=status,
                # The claim counted an attempt that is not made.
                attempts=Delivery.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                last_smtp_reply=reply,
                updated_at=now,
            )
        )

    async def release_held(self, workspace_id: uuid.UUID, *, now: datetime) -> int:
        result = await self.session.execute(release_held_statement(workspace_id, now=now))
        return db_dialect.rowcount(result)

    async def mark_bounced(self, delivery_id: uuid.UUID, verdict: Verdict) -> None:
        """A delivery the next hop accepted, then returned: show it as bounced, and why."""
        await self.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENT)
            .values(
                status=DeliveryStatus.BOUNCED,
                failure_class=str(verdict.klass),
                failure_subclass=verdict.subclass,
            )
        )


def release_held_statement(workspace_id: uuid.UUID, *, now: datetime) -> Update:
    """Also run on a plain connection (delivery/reclassify.py, from a migration)."""
    return (
        update(Delivery)
        .where(Delivery.workspace_id == workspace_id, Delivery.status == DeliveryStatus.HELD)
        .values(status=DeliveryStatus.QUEUED, next_attempt_at=now, updated_at=now)
    )
