"""How seed 003's messages API shapes the domain errors: one body for every error,
``{"status": "error", "code": -1, "name": ..., "message": ...}``, with the document's three
names. The HTTP status is the usual one for the error (docs/compatibility.md); the body
is what the document's clients read."""

from typing import Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from posthouse.api.errors import bounded, error_headers
from posthouse.errors import (
    AttachmentRejected,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PosthouseError,
    RequestTimeout,
    RequestTooLarge,
    SenderNotFound,
    ServiceUnavailable,
    TemplateInvalid,
    TemplateRenderFailed,
    Unauthenticated,
    ValidationFailed,
)

VALIDATION = "ValidationError"
GENERAL = "GeneralError"
AUTHENTICATION = "AuthenticationError"
ErrorName = Literal["ValidationError", "GeneralError", "AuthenticationError"]

# The document's one wording: any credential that does not match.
TOKEN_MISMATCH = "Token MissMatch"


class SendCleanError(BaseModel):
    status: Literal["error"]
    code: int
    name: ErrorName
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": SendCleanError, "description": description}
    for code, description in {
        400: "ValidationError: parameters invalid or missing; GeneralError: quota or suspension",
        401: "AuthenticationError: owner_id, token and smtp_user_name do not match",
        404: "ValidationError: unknown template (or path)",
        405: "ValidationError: method not allowed",
        408: "ValidationError: the body did not arrive in time",
        409: "GeneralError: the sending domain is not verified",
        413: "ValidationError: body, attachment or message too large",
        422: "ValidationError: attachment refused, template does not compile; "
        "GeneralError: every recipient suppressed",
        429: "GeneralError: rate limited (Retry-After)",
        503: "GeneralError: the database is unavailable, nothing was stored (Retry-After)",
    }.items()
}

# A SendRequest field's canonical name -> where it is in this API's request.
FIELD_NAMES = {
    "sender": "message.from_email",
    "to": "message.to",
    "cc": "message.to",
    "bcc": "message.to",
    "reply_to": "message.headers.Reply-To",
    "external_id": "message.headers.X-Unique-Id",
    "subject": "message.subject",
    "html": "message.html",
    "text": "message.text",
    "headers": "message.headers",
    "variables": "message.dynamic_value",
    "signing_domain": "message.headers.X-STes-SigningDomain",
    "return_path_domain": "message.headers.X-STes-ReturnPathDomain",
    "tracking_domain": "message.headers.X-STes-TrackingDomain",
    "page": "skip_page",
}

# (class, name): the first class that matches wins; anything else is a GeneralError.
_NAMES: tuple[tuple[type[PosthouseError], str], ...] = (
    (Unauthenticated, AUTHENTICATION),
    (Forbidden, AUTHENTICATION),
    (SenderNotFound, VALIDATION),
    (ValidationFailed, VALIDATION),
    (AttachmentRejected, VALIDATION),
    (RequestTooLarge, VALIDATION),
    (RequestTimeout, VALIDATION),
    (NotFound, VALIDATION),
    (MethodNotAllowed, VALIDATION),
    (TemplateInvalid, VALIDATION),
    (TemplateRenderFailed, VALIDATION),
)


def error_name(error: PosthouseError) -> str:
    for kind, name in _NAMES:
        if isinstance(error, kind):
            return name
    return GENERAL


def error_message(error: PosthouseError) -> str:
    if isinstance(error, Unauthenticated):
        return TOKEN_MISMATCH
    if isinstance(error, SenderNotFound):
        return "message.from_email is not a sender of this account"
    if isinstance(error, ServiceUnavailable):
        return "The service is temporarily unavailable; nothing was stored, try again shortly"
    field = error.field
    if field in FIELD_NAMES and error.detail.startswith(field):
        return FIELD_NAMES[field] + error.detail[len(field) :]
    return error.detail


def render_error(error: PosthouseError) -> Response:
    body = {
        "status": "error",
        "code": -1,
        "name": error_name(error),
        "message": bounded(error_message(error)),
    }
    headers = error_headers(error)
    status = error.status_code if 400 <= error.status_code < 600 else 400
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
