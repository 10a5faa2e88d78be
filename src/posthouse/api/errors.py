"""Error mapping: each front door renders the shared domain errors in its own shape."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from posthouse.addresses import shown
from posthouse.errors import (
    MethodNotAllowed,
    PosthouseError,
    RequestTooLarge,
    RouteNotFound,
    ValidationFailed,
)

ErrorRenderer = Callable[[PosthouseError], Response]
# The longest message an error response carries: whatever a client sent, the answer
# stays small.
MAX_MESSAGE = 1000


def bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def validation_failed(errors: Sequence[Any], *, request_errors: bool = False) -> ValidationFailed:
    """The first of pydantic's errors as a domain error. FastAPI's request errors start
    their location with where the value was (body, query, header): not a field name."""
    first = errors[0] if errors else {}
    location = list(first.get("loc", ()))
    if request_errors and location and location[0] in ("body", "query", "header", "path"):
        location = location[1:]
    # Bounded: a location can be a key the client chose, of any length.
    field = ".".join(str(part) for part in location)[:100]
    if first.get("type") == "extra_forbidden":
        return ValidationFailed(f"unknown field {shown(field)}", field=field or None)
    message = first.get("msg", "invalid request")
    return ValidationFailed(f"{field}: {message}" if field else message, field=field or None)


def as_domain_error(error: Exception) -> PosthouseError | None:
    """The domain error behind framework exceptions raised while reading a request."""
    if isinstance(error, PosthouseError):
        return error
    if isinstance(error, RequestValidationError):
        return validation_failed(error.errors(), request_errors=True)
    # Starlette's class: FastAPI raises it for unreadable bodies, the router for unknown
    # paths and methods.
    if isinstance(error, HTTPException) and 400 <= error.status_code < 500:
        cause = error.__cause__
        if isinstance(cause, PosthouseError):
            return cause
        if error.status_code == 404:
            return RouteNotFound("Not Found")
        if error.status_code == 405:
            return MethodNotAllowed(
                "Method Not Allowed", allow=(error.headers or {}).get("Allow") or None
            )
        if error.status_code == 413:
            return RequestTooLarge(str(error.detail))
        return ValidationFailed(str(error.detail))
    return None


def app_error_handler(
    render: ErrorRenderer,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An app-wide handler for what happens outside any front door's routes (an unknown
    path or method): rendered in ``render``'s shape like the routes' own errors."""

    # async: Starlette runs a plain def handler in its thread pool.
    async def handle(request: Request, error: Exception) -> Response:
        domain_error = as_domain_error(error) or ValidationFailed("invalid request")
        return render(domain_error)

    return handle
