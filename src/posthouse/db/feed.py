"""The polling feed's order: the one place PostgreSQL and SQLite differ for it.

A client that polls "events after my cursor" must see every event exactly once, also when
transactions commit out of order. On PostgreSQL an order by time or by a sequence alone
loses events: a transaction that took its number (or timestamp) earlier can commit after
a reader has already moved past it. So each event carries its inserting transaction's id
(``event.feed_txid``, a column default) and the feed orders by (feed_txid, id), handing
out only events of transactions older than the horizon: the oldest transaction the
reading snapshot still sees in progress, or the snapshot's xmax when there is none. Every
transaction below it has ended, so nothing can later appear before a cursor taken from
them, and every transaction that starts later gets a larger id.

The snapshot lists in-progress transactions of every database of the cluster; those that
``pg_stat_activity`` shows in another database cannot write this table and are left out,
so a long transaction elsewhere does not stall the feed. Anything not shown there (it
ended after the snapshot, is a prepared transaction, or the role may not see it) is kept:
it can only delay the feed, never make it skip. A long-running transaction in this
database holds the feed back until it ends.

SQLite has one writer at a time, so rows become visible in rowid order: the rowid alone
is the position.
"""

import uuid
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, cast, literal_column, or_, text, true
from sqlalchemy.engine import Dialect

from posthouse.db.models import Event

Position = list[Any]

_ROWID = literal_column("event.rowid", BigInteger)
_HORIZON = cast(
    text(
        "(SELECT coalesce("
        " (SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
        "  WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a"
        "   WHERE a.backend_xid = x::xid AND a.datname <> current_database())),"
        " pg_snapshot_xmax(pg_current_snapshot()))::text)"
    ),
    BigInteger,
)


def _postgresql(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


def order(dialect: Dialect) -> tuple[Any, ...]:
    if _postgresql(dialect):
        return (Event.feed_txid, Event.id)
    return (_ROWID,)


def visible(dialect: Dialect) -> ColumnElement[bool]:
    """Events a poll may hand out now."""
    if _postgresql(dialect):
        return Event.feed_txid < _HORIZON
    return true()


def after(dialect: Dialect, position: Position) -> ColumnElement[bool]:
    """Events after ``position`` (as ``position_of`` made it) in the feed's order."""
    if _postgresql(dialect):
        txid, event_id = int(position[0]), position[1]
        return or_(Event.feed_txid > txid, and_(Event.feed_txid == txid, Event.id > event_id))
    return _ROWID > int(position[0])


def position_of(dialect: Dialect, values: tuple[Any, ...]) -> Position:
    """The position of an event selected with the ``order`` columns (JSON-able)."""
    if _postgresql(dialect):
        return [int(values[0]), str(values[1])]
    return [int(values[0])]


def parse(dialect: Dialect, position: Position) -> Position:
    """A decoded position of this database's shape; ValueError for anything else."""
    if _postgresql(dialect):
        if len(position) != 2:
            raise ValueError("bad position")
        return [int(position[0]), uuid.UUID(str(position[1]))]
    if len(position) != 1:
        raise ValueError("bad position")
    return [int(position[0])]
