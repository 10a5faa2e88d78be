"""Many rows in one PostgreSQL statement: each column as one array, unnested.

An executemany runs its statement once per row, and each run costs PostgreSQL its own
bind, executor start and end. The worker writes three rows per email (outcome, attempt,
event); as one statement per table and batch, draining 4,000 emails cost 10 to 14% less
server time per email (event insert 54 -> 37 µs, attempt 28 -> 24, outcome 77 -> 73).
"""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Executable, Table, TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.dialect import POSTGRESQL, dialect_of


@cache
def _array_type(table: Table, column: str, dialect: Dialect) -> str:
    return f"{table.c[column].type.compile(dialect=dialect)}[]"


@cache
def _processor(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    return table.c[column].type.dialect_impl(dialect).bind_processor(dialect)


def unnested(table: Table, columns: Sequence[str], dialect: Dialect, *, name: str = "o") -> str:
    """``unnest(CAST(:c1 AS t1[]), ...) AS name(c1, ...)``, for a FROM clause."""
    arrays = ", ".join(
        f"CAST(:{column} AS {_array_type(table, column, dialect)})" for column in columns
    )
    return f"unnest({arrays}) AS {name}({', '.join(columns)})"


def column_arrays(
    table: Table, rows: Sequence[dict[str, Any]], dialect: Dialect, columns: Sequence[str]
) -> dict[str, list[Any]]:
    """Each column's values across ``rows``, bound as SQLAlchemy binds the column's type
    (JSON serialised, datetimes checked for a time zone)."""
    arrays: dict[str, list[Any]] = {}
    for column in columns:
        process = _processor(table, column, dialect)
        values = [row[column] for row in rows]
        arrays[column] = [process(v) for v in values] if process else values
    return arrays


@cache
def insert_statement(
    table: Table, columns: tuple[str, ...], dialect: Dialect, *, ignore_conflicts_on: str = ""
) -> TextClause:
    """``INSERT INTO table (columns) SELECT * FROM unnest(...)``; with
    ``ignore_conflicts_on``, rows that clash on that unique column are skipped."""
    conflict = f" ON CONFLICT ({ignore_conflicts_on}) DO NOTHING" if ignore_conflicts_on else ""
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT * FROM {unnested(table, columns, dialect)}{conflict}"
    )


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    elsewhere: Executable,
    ignore_conflicts_on: str = "",
) -> None:
    """Insert ``rows`` (all with the same keys): one unnested statement on PostgreSQL,
    an executemany of ``elsewhere`` on other databases."""
    if not rows:
        return
    dialect = dialect_of(session)
    if dialect.name != POSTGRESQL:
        await session.execute(elsewhere, list(rows))
        return
    columns = tuple(rows[0])
    await session.execute(
        insert_statement(table, columns, dialect, ignore_conflicts_on=ignore_conflicts_on),
        column_arrays(table, rows, dialect, columns),
    )
