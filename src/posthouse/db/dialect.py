"""The differences between PostgreSQL and SQLite, in one place.

Repositories ask here which database a session, connection or engine speaks, and get
their dialect's INSERT (with ``ON CONFLICT``) from here, instead of branching on
dialect names themselves. PostgreSQL-only statement shapes (arrays bound as one
parameter, unnested inserts) are in ``db.arrays``.
"""

from typing import Any

from sqlalchemy import CursorResult, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

POSTGRESQL = "postgresql"
SQLITE = "sqlite"
NAMES = (POSTGRESQL, SQLITE)

Bind = AsyncSession | AsyncConnection | AsyncEngine
# Both dialects' INSERT has on_conflict_do_nothing / on_conflict_do_update and excluded.
UpsertInsert = postgresql.Insert | sqlite.Insert


def dialect_of(bind: Bind) -> Dialect:
    if isinstance(bind, AsyncSession):
        engine = bind.bind
        if engine is None:
            raise RuntimeError("the session is bound to no engine")
        return engine.dialect
    return bind.dialect


def name_of(bind: Bind) -> str:
    return dialect_of(bind).name


def is_postgresql(bind: Bind) -> bool:
    return dialect_of(bind).name == POSTGRESQL


def is_sqlite(bind: Bind) -> bool:
    return dialect_of(bind).name == SQLITE


def insert(name: str, table: Any) -> UpsertInsert:
    """The INSERT of the dialect called ``name``, with its ON CONFLICT clauses."""
    if name == POSTGRESQL:
        return postgresql.insert(table)
    return sqlite.insert(table)


def table_of(model: Any) -> Table:
    """A mapped class's Table (``Model.__table__`` is typed as any FROM clause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (0 where the driver does not say)."""
    return result.rowcount if isinstance(result, CursorResult) else 0


def json_with(name: str, document: str, fields: dict[str, str]) -> str:
    """SQL for the JSON ``document`` (an expression) with ``fields`` (key: SQL expression)
    set, as a ``json`` value on PostgreSQL and JSON text on SQLite."""
    if name == POSTGRESQL:
        pairs = ", ".join(f"'{key}', {value}" for key, value in fields.items())
        return f"CAST(CAST({document} AS JSONB) || jsonb_build_object({pairs}) AS JSON)"
    paths = ", ".join(f"'$.{key}', {value}" for key, value in fields.items())
    return f"json_set({document}, {paths})"
