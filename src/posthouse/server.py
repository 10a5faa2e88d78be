"""How uvicorn serves the API: its connection limits, and a deadline for request headers.

uvicorn (0.55) closes an idle keep-alive connection after ``timeout_keep_alive``, but has
no timeout for a connection that opened and never finished its request headers: each
such connection (slowloris) would stay open for good. The protocol classes here add
one: a connection must complete a request's headers within
``POSTHOUSE_HTTP_HEADER_TIMEOUT_SECONDS`` of opening, or of its previous response,
or it is closed. The body has its own deadline (api.routing.read_body).

Header size: h11 refuses headers over ``h11_max_incomplete_event_size``; httptools (the
faster parser uvicorn picks when installed) has no such setting, so its protocol here
counts the request line and headers against the same limit.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from posthouse.config import Settings, get_settings


class _HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: ``cycle`` is the request whose headers were
    the last completed, replaced when the next request's headers are complete."""

    # None: POSTHOUSE_HTTP_HEADER_TIMEOUT_SECONDS (read in each server process).
    header_timeout: float | None = None
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        if self.transport.is_closing():
            return
        seconds = self.header_timeout or get_settings().http_header_timeout_seconds
        self._header_deadline = self.loop.call_later(
            seconds, self._header_deadline_passed, self.cycle
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self, previous: Any) -> None:
        self._header_deadline = None
        if self.cycle is previous and not self.transport.is_closing():
            self.transport.close()


class HeaderDeadlineH11Protocol(_HeaderDeadline, H11Protocol):
    pass


class HeaderDeadlineHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
    # None: POSTHOUSE_HTTP_MAX_HEADER_BYTES.
    max_header_bytes: int | None = None
    _header_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        limit = self.max_header_bytes or get_settings().http_max_header_bytes
        if self._header_bytes > limit:
            # Raised inside the parser's callback: uvicorn answers 400 and closes.
            raise ValueError(f"request headers larger than {limit} bytes")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every ``uvicorn.run`` of posthouse passes."""
    return {
        "http": HeaderDeadlineHttpToolsProtocol,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
    }
