"""Error mapping: each front door renders the shared domain errors in its own shape."""

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import HTTPException, Response
from fastapi.exceptions import RequestValidationError

from posthouse.db.outage import OutageLog, is_unavailable
from posthouse.errors import PosthouseError, RequestTooLarge, ServiceUnavailable, ValidationFailed

ErrorRenderer = Callable[[PosthouseError], Response]

# A database restart takes seconds: a client that waits this long usually gets through.
UNAVAILABLE_RETRY_AFTER = 5
_outages = OutageLog()


def validation_failed(errors: Sequence[Any], *, request_errors: bool = False) -> ValidationFailed:
    """The first of pydantic's errors as a domain error. FastAPI's request errors start
    their location with where the value was (body, query, header): not a field name."""
    first = errors[0] if errors else {}
    location = list(first.get("loc", ()))
    if request_errors and location and location[0] in ("body", "query", "header", "path"):
        location = location[1:]
    field = ".".join(str(part) for part in location)
    message = first.get("msg", "invalid request")
    return ValidationFailed(f"{field}: {message}" if field else message, field=field or None)


def as_domain_error(error: Exception) -> PosthouseError | None:
    """The domain error behind framework exceptions raised while reading a request, and
    behind a database that cannot be reached (503: the request may be tried again)."""
    if isinstance(error, PosthouseError):
        return error
    if is_unavailable(error):
        _outages.note(error)
        return ServiceUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER)
    if isinstance(error, RequestValidationError):
        return validation_failed(error.errors(), request_errors=True)
    if isinstance(error, HTTPException) and 400 <= error.status_code < 500:
        cause = error.__cause__
        if isinstance(cause, PosthouseError):
            return cause
        if error.status_code == 413:
            return RequestTooLarge(str(error.detail))
        return ValidationFailed(str(error.detail))
    return None
