"""How seed 004's email API shapes the domain errors: one body for every error,
``{"error": {"code", "message"}}`` (the document gives none; docs/compatibility.md), its
status codes and its field names."""

import orjson
from fastapi.responses import Response

from posthouse.api.errors import bounded, error_headers
from posthouse.errors import (
    AttachmentRejected,
    DomainNotVerified,
    Forbidden,
    IdempotencyConflict,
    IdempotencyInFlight,
    MethodNotAllowed,
    NotFound,
    PosthouseError,
    QuotaExceeded,
    RateLimited,
    RecipientsSuppressed,
    RequestTooLarge,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
    WorkspaceSuspended,
)

# A SendRequest field's canonical name -> this API's form field.
FIELD_NAMES = {"to": "to_address", "html": "body_html"}

# (class, status, code): the first class that matches wins.
_ERRORS: tuple[tuple[type[PosthouseError], int, str], ...] = (
    (RecipientsSuppressed, 422, "message_rejected"),
    (WorkspaceSuspended, 422, "message_rejected"),
    (AttachmentRejected, 422, "invalid_attachment"),
    (ValidationFailed, 422, "invalid_request"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (MethodNotAllowed, 405, "method_not_allowed"),
    (DomainNotVerified, 409, "setup_not_verified"),
    (IdempotencyConflict, 409, "idempotency_conflict"),
    (IdempotencyInFlight, 409, "idempotency_in_flight"),
    (RequestTooLarge, 413, "too_large"),
    (QuotaExceeded, 429, "quota_exceeded"),
    (RateLimited, 429, "rate_limited"),
    (ServiceUnavailable, 503, "service_unavailable"),
)


def render_error(error: PosthouseError) -> Response:
    status, code = error.status_code, "error"
    for kind, kind_status, kind_code in _ERRORS:
        if isinstance(error, kind):
            status, code = kind_status, kind_code
            break
    headers = error_headers(error)
    # One text for every 404, so no answer tells "not yours" from "does not exist".
    message = "not found" if isinstance(error, NotFound) else error.detail
    field = error.field
    if field in FIELD_NAMES and message.startswith(field):
        message = FIELD_NAMES[field] + message[len(field) :]
    body = {"error": {"code": code, "message": bounded(message)}}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
