"""What every subcommand shares: the event loop, a session per command, errors as exit status 2."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from posthouse.config import Settings, get_settings
from posthouse.db.engine import create_engine, create_sessionmaker

T = TypeVar("T")

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


def logging_setup() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


async def with_session(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url, null_pool=True)
    try:
        # Not sessionmaker.begin(): work may end a read-only transaction itself before
        # slow network I/O (domain verification's DNS lookups).
        async with create_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def session_command(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction; domain errors exit with status 2."""
    from posthouse.errors import PosthouseError

    try:
        return run(lambda: with_session(get_settings(), work))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
