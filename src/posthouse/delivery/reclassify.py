"""Classify stored failures again, and undo what the old rule did to good recipients.

Before bounce classes (issue 21) every 5xx was a Permanent bounce: a blocked IP or a
DMARC refusal suppressed the recipient and counted toward the bounce rate. This reads
every stored failure again with the classifier (delivery/classify.py), rewrites the
classes on deliveries and Bounce events, removes the automatic suppressions whose bounce
is no longer hard, and lifts bounce-rate suspensions the corrected rates no longer call
for (releasing the mail they held).

It runs on a plain (synchronous) connection, so migration 0004 and ``posthouse
reclassify`` run the same code; the caller owns the transaction (a dry run rolls back).
Columns are named explicitly: a migration must not depend on later model columns.
"""

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from posthouse.db import dialect as db_dialect
from posthouse.db.base import utcnow
from posthouse.db.engine import create_engine
from posthouse.db.models import Delivery, DeliveryStatus, Event, Suppression, Workspace
from posthouse.delivery.classify import (
    PERMANENT,
    Verdict,
    classify_dsn,
    classify_reply,
)
from posthouse.delivery.outcomes import GAVE_UP
from posthouse.delivery.repository import release_held_statement
from posthouse.protections import reputation
from posthouse.protections.repositories.reputation import outcome_counts_statement

log = logging.getLogger(__name__)

_BATCH = 1000
# How the worker wrote a copy that failed after its retries ran out.
_EXPIRED_SUBTYPE = "QueueLifetimeExpired"  # the subtype such copies had before classes


@dataclass
class ReclassifyReport:
    deliveries_changed: int = 0
    bounce_events_changed: int = 0
    no_longer_permanent: int = 0
    suppressions_lifted: int = 0
    workspaces_unsuspended: list[str] = field(default_factory=list)
    deliveries_released: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.deliveries_changed or self.bounce_events_changed)

    def lines(self) -> list[str]:
        return [
            f"deliveries reclassified:   {self.deliveries_changed}",
            f"bounce events changed:     {self.bounce_events_changed}"
            f" ({self.no_longer_permanent} no longer Permanent)",
            f"suppressions lifted:       {self.suppressions_lifted}",
            f"suspensions lifted:        {len(self.workspaces_unsuspended)}"
            + "".join(f"\n  {name}" for name in self.workspaces_unsuspended),
            f"held deliveries released:  {self.deliveries_released}",
        ]


def worker_verdict(code: int | None, reply: str | None, *, expired: bool) -> Verdict:
    """The verdict on a reply the worker stored (``gave up after N attempts: ...`` when
    its retries ran out)."""
    reply = reply or ""
    gave_up = reply.startswith(GAVE_UP)
    if gave_up:
        reply = reply.split(": ", 1)[-1]
    expired = expired or gave_up
    verdict = classify_reply(code, reply)
    return verdict.expired() if expired else verdict


def _event_verdict(data: dict[str, Any]) -> Verdict:
    if data.get("source") == "inbound":
        return classify_dsn(data.get("status"), data.get("smtp_reply"))
    code = data.get("smtp_code")
    return worker_verdict(
        code if isinstance(code, int) else None,
        data.get("smtp_reply"),
        expired=data.get("bounce_subtype") == _EXPIRED_SUBTYPE
        or (isinstance(code, int) and code < 500),
    )


def _pages(connection: Connection, statement: Any, key: Any) -> Iterator[list[Any]]:
    """Rows of ``statement`` ``_BATCH`` at a time, in ``key`` order."""
    after: uuid.UUID | None = None
    while True:
        page = statement.order_by(key).limit(_BATCH)
        if after is not None:
            page = page.where(key > after)
        rows = list(connection.execute(page))
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def reclassify(connection: Connection, *, now: datetime) -> ReclassifyReport:
    report = ReclassifyReport()
    _reclassify_deliveries(connection, report)
    demoted = _reclassify_bounce_events(connection, report)
    _lift_suppressions(connection, demoted, report)
    _lift_suspensions(connection, now, report)
    return report


def _reclassify_deliveries(connection: Connection, report: ReclassifyReport) -> None:
    table = db_dialect.table_of(Delivery)
    statement = select(
        table.c.id,
        table.c.status,
        table.c.last_smtp_code,
        table.c.last_smtp_reply,
        table.c.failure_class,
        table.c.failure_subclass,
    ).where(table.c.status.in_((DeliveryStatus.BOUNCED, DeliveryStatus.DEFERRED)))
    change = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(failure_class=bindparam("b_class"), failure_subclass=bindparam("b_subclass"))
    )
    for rows in _pages(connection, statement, table.c.id):
        changes = []
        for id_, _status, code, reply, klass, subclass in rows:
            if code is not None and 200 <= code < 300:
                continue  # sent, then bounced by a DSN: the Bounce event says why
            verdict = worker_verdict(code, reply, expired=False)
            if (klass, subclass) != (verdict.klass, verdict.subclass):
                changes.append(
                    {"b_id": id_, "b_class": str(verdict.klass), "b_subclass": verdict.subclass}
                )
        if changes:
            connection.execute(change, changes)
            report.deliveries_changed += len(changes)


def _reclassify_bounce_events(connection: Connection, report: ReclassifyReport) -> set[uuid.UUID]:
    """Rewrite every Bounce event's classes; returns the events no longer Permanent."""
    table = db_dialect.table_of(Event)
    deliveries = db_dialect.table_of(Delivery)
    statement = select(table.c.id, table.c.delivery_id, table.c.data).where(
        table.c.type == "Bounce"
    )
    change = update(table).where(table.c.id == bindparam("b_id")).values(data=bindparam("b_data"))
    delivery_class = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .values(failure_class=bindparam("b_class"), failure_subclass=bindparam("b_subclass"))
    )
    demoted: set[uuid.UUID] = set()
    for rows in _pages(connection, statement, table.c.id):
        changes, classes = [], []
        for id_, delivery_id, data in rows:
            data = dict(data or {})
            verdict = _event_verdict(data)
            new = data | verdict.event_data()
            if data.get("source") == "inbound" and delivery_id is not None:
                classes.append(
                    {
                        "b_id": delivery_id,
                        "b_class": str(verdict.klass),
                        "b_subclass": verdict.subclass,
                    }
                )
            if new == data:
                continue
            if data.get("bounce_type") == PERMANENT and new["bounce_type"] != PERMANENT:
                demoted.add(id_)
            changes.append({"b_id": id_, "b_data": new})
        if changes:
            connection.execute(change, changes)
            report.bounce_events_changed += len(changes)
        if classes:
            connection.execute(delivery_class, classes)
    report.no_longer_permanent = len(demoted)
    return demoted


def _lift_suppressions(
    connection: Connection, demoted: set[uuid.UUID], report: ReclassifyReport
) -> None:
    table = db_dialect.table_of(Suppression)
    ids = sorted(demoted)
    for start in range(0, len(ids), _BATCH):
        result = connection.execute(
            delete(table).where(
                table.c.reason == "hard_bounce",
                table.c.source_event_id.in_(ids[start : start + _BATCH]),
            )
        )
        report.suppressions_lifted += db_dialect.rowcount(result)


def _lift_suspensions(connection: Connection, now: datetime, report: ReclassifyReport) -> None:
    table = db_dialect.table_of(Workspace)
    suspended = connection.execute(
        select(
            table.c.id,
            table.c.name,
            table.c.max_bounce_rate,
            table.c.max_complaint_rate,
            table.c.rate_min_volume,
            table.c.rate_window_days,
            table.c.rates_reset_at,
        ).where(
            table.c.suspended_at.is_not(None),
            table.c.suspension_reason == reputation.HIGH_BOUNCE_RATE,
        )
    )
    for row in list(suspended):
        workspace = Workspace(**row._asdict())  # transient: only for the rules' arithmetic
        since = reputation.window_start(workspace, now=now)
        counts = {
            str(k): int(n)
            for k, n in connection.execute(outcome_counts_statement(workspace.id, since=since))
        }
        current = reputation.rates_from_counts(counts, workspace=workspace, since=since)
        if reputation.exceeded(current, workspace=workspace) is not None:
            continue
        connection.execute(
            update(table)
            .where(table.c.id == workspace.id)
            .values(suspended_at=None, suspension_reason=None)
        )
        released = connection.execute(release_held_statement(workspace.id, now=now))
        report.workspaces_unsuspended.append(workspace.name)
        report.deliveries_released += db_dialect.rowcount(released)


async def run(database_url: str, *, dry_run: bool) -> ReclassifyReport:
    """``posthouse reclassify``: one transaction, rolled back for a dry run."""
    engine = create_engine(database_url, null_pool=True)
    try:
        async with engine.connect() as connection:
            report = await connection.run_sync(lambda c: reclassify(c, now=utcnow()))
            if dry_run:
                await connection.rollback()
            else:
                await connection.commit()
        return report
    finally:
        await engine.dispose()
