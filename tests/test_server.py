"""Issue 15, point 17: the server closes connections that never finish their headers."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from posthouse.config import Settings
from posthouse.server import (
    HeaderDeadlineH11Protocol,
    HeaderDeadlineHttpToolsProtocol,
    uvicorn_options,
)
from tests.smtp_server import free_port


class QuickH11(HeaderDeadlineH11Protocol):
    header_timeout = 0.2


class QuickHttpTools(HeaderDeadlineHttpToolsProtocol):
    header_timeout = 0.2
    max_header_bytes = 4096


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers after longer than the header deadline: a request in progress is not cut."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(0.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=[QuickHttpTools, QuickH11], ids=["httptools", "h11"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        slow_app,
        host="127.0.0.1",
        port=port,
        http=request.param,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=4096,
        log_level="warning",
        lifespan="off",
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    for _ in range(500):
        if running.started:
            break
        await asyncio.sleep(0.01)
    yield port
    running.should_exit = True
    await task


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sends before closing; fails if it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), 10)


async def test_a_connection_that_never_finishes_its_headers_is_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")

    assert await closed_by_server(reader) == b""
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)

    assert await closed_by_server(reader) == b""
    writer.close()


async def test_after_a_response_the_next_requests_headers_have_the_same_deadline(
    server: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    # The app takes longer than the header deadline: a request under way is not cut.
    first = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 200")

    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line

    assert await closed_by_server(reader) == b""
    writer.close()


async def test_oversized_headers_are_refused(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"\r\n\r\n")

    answer = await closed_by_server(reader)

    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    writer.close()


def test_the_commands_run_uvicorn_with_these_settings() -> None:
    settings = Settings(
        _env_file=None,
        http_header_timeout_seconds=7,
        http_keep_alive_seconds=3,
        http_max_header_bytes=8192,
    )

    assert uvicorn_options(settings) == {
        "http": HeaderDeadlineHttpToolsProtocol,
        "timeout_keep_alive": 3,
        "h11_max_incomplete_event_size": 8192,
    }
