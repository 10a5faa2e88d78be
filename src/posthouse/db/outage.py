"""Which database errors mean "the database is unavailable", decided in one place, and
a log of them that says so once a second rather than a traceback per request."""

import logging
import time

from sqlalchemy import exc

log = logging.getLogger("posthouse.db")

# OperationalError: connection refused or lost, server shutting down, SQLite unable to
# open or locked past its busy timeout. InterfaceError: asyncpg's "connection is
# closed". TimeoutError: no pooled connection came free in time. DisconnectionError: a
# connection found dead on checkout.
_UNAVAILABLE = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    exc.DisconnectionError,
    ConnectionError,
)


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or what it was raised from) says the database could not be
    reached or used: the request can be tried again later, it was not wrong."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _UNAVAILABLE):
            return True
        seen = seen.__cause__
    return False


class OutageLog:
    """One warning line per ``interval`` seconds for a run of failures, with how many
    were left out since the last one."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = float("-inf")
        self._skipped = 0

    def note(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._skipped += 1
            return
        more = f" ({self._skipped} more since the last report)" if self._skipped else ""
        self._last, self._skipped = now, 0
        log.warning("database unavailable%s: %s", more, _one_line(error))


def _one_line(error: BaseException) -> str:
    # SQLAlchemy's message carries the statement and a documentation link: the first line
    # of the driver's own error is what an operator needs.
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}"
