"""Error mapping: each front door renders the shared domain errors in its own shape."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from posthouse.addresses import shown
from posthouse.db.outage import OutageLog, is_unavailable
from posthouse.errors import (
    IdempotencyInFlight,
    MethodNotAllowed,
    PosthouseError,
    RateLimited,
    RequestTooLarge,
    RouteNotFound,
    ServiceUnavailable,
    ValidationFailed,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
ErrorRenderer = Callable[[PosthouseError], Response]
# The longest message an error response carries: whatever a client sent, the answer
# stays small.
MAX_MESSAGE = 1000


def bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def error_headers(error: PosthouseError) -> dict[str, str]:
    """The HTTP headers an error answer carries in every door's shape: when to try again,
    and which methods a path has."""
    headers = {}
    if isinstance(error, RateLimited | IdempotencyInFlight | ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, MethodNotAllowed) and error.allow:
        headers["Allow"] = error.allow
    return headers


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
    # Bounded: a location can be a key the client chose, of any length.
    field = ".".join(str(part) for part in location)[:100]
    if first.get("type") == "extra_forbidden":
        return ValidationFailed(f"unknown field {shown(field)}", field=field or None)
    message = first.get("msg", "invalid request")
    return ValidationFailed(f"{field}: {message}" if field else message, field=field or None)


def validated(model: type[ModelT], payload: Any) -> ModelT:
    """``payload`` as ``model``, or the first of its errors as ValidationFailed."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise validation_failed(error.errors()) from None


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
    doors: Sequence[tuple[str, ErrorRenderer]] = (),
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An app-wide handler for what happens outside any front door's routes (an unknown
    path or method, a body FastAPI cannot parse): rendered in the shape of the door whose
    path prefix the request is under (``doors``, first match wins), else ``render``'s."""

    # async: Starlette runs a plain def handler in its thread pool.
    async def handle(request: Request, error: Exception) -> Response:
        domain_error = as_domain_error(error) or ValidationFailed("invalid request")
        path = request.url.path
        for prefix, door_render in doors:
            if path.startswith(prefix):
                return door_render(domain_error)
        return render(domain_error)

    return handle
