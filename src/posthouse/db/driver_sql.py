"""Statements SQLAlchemy compiles once and the driver runs: for the few hot statements
where SQLAlchemy's work on every execution (an execution context, parameters processed
by name, a result set up) costs more than the statement (the accepted email's combined
insert, a tracking hit)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_


@dataclass(frozen=True)
class DriverStatement:
    """A statement SQLAlchemy compiled once, run as driver SQL: its text and, for each
    positional parameter, the name it is bound by and its type's bind processor (JSON
    serialisation, the UTC check), applied as SQLAlchemy would."""

    sql: str
    parameters: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def arguments(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            process(values[name]) if process else values[name] for name, process in self.parameters
        )


def compile_for_driver(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    """``statement`` compiled for a dialect with numbered parameters (asyncpg's)."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    assert compiled.positiontup is not None  # asyncpg's numbered parameters
    return DriverStatement(
        sql=compiled.string,
        parameters=tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ),
    )


# What a lost or unusable connection raises from asyncpg (PostgreSQL's only driver here).
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def fetch_one_autocommitted(
    engine: Engine, statement: DriverStatement, values: dict[str, Any]
) -> Any:
    """PostgreSQL (asyncpg): run ``statement`` on a pooled connection outside any
    transaction, so it commits on its own, and return its first row (or None). Called in
    a greenlet (``sqlalchemy.util.greenlet_spawn``); the connection is checked out and
    back in within it. A lost or unusable connection is raised as SQLAlchemy's
    OperationalError, as SQLAlchemy would (db.outage: the database is unavailable), and
    dropped from the pool."""
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None
        return await_(driver.fetchrow(statement.sql, *statement.arguments(values)))
    except _CONNECTION_ERRORS as error:
        connection.invalidate(error)
        raise exc.OperationalError(statement.sql, None, error) from error
    finally:
        connection.close()
