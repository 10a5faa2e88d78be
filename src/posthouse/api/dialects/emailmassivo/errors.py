"""How seed 001's API ("emailmassivo") words and shapes the domain errors.

The document lists statuses and messages but shows no error body. posthouse answers with
the body of the framework those messages come from (NestJS's HttpException):
``{"message": "...", "error": "<reason phrase>", "statusCode": N}``, with the document's
own messages where it has one (docs/compatibility.md, "Seed 001").
"""

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from posthouse.api.errors import bounded, error_headers
from posthouse.errors import (
    AttachmentRejected,
    AttachmentTooLarge,
    AttachmentTypeForbidden,
    DomainNotVerified,
    EmailNotFound,
    Forbidden,
    MessageNotFound,
    MissingVariables,
    NotFound,
    PosthouseError,
    QuotaExceeded,
    RateLimited,
    RecipientsSuppressed,
    SenderNotFound,
    ServiceUnavailable,
    TemplateInvalid,
    TemplateNotFound,
    TemplateRenderFailed,
    Unauthenticated,
    WorkspaceSuspended,
)

INVALID_KEY = "Invalid API key"
KEY_NOT_ACTIVE = "API key is not active"
UNAVAILABLE_RECEIVER = "Email receiver unavailable"
# posthouse's suppression reasons (protections.suppression.SuppressionReason) in the
# document's four 422 messages; an operator's manual entry is "unavailable".
SUPPRESSION_MESSAGES = {
    "unsubscribe": "Email receiver unsubscribed from this API key mails",
    "complaint": "Email receiver complained from this API key mails",
    "hard_bounce": "Email receiver doesn't exist",
    "manual": UNAVAILABLE_RECEIVER,
}


class ApiKeyNotFound(NotFound):
    """An X-Api-Key shaped like a key that names no active key: the document's own 404."""

    def __init__(self) -> None:
        super().__init__("API key not found")


class ExternalMailError(BaseModel):
    message: str
    error: str
    statusCode: int


# A SendRequest field's canonical name -> where it is in this API's JSON body.
FIELD_NAMES = {
    "sender": "mail.from",
    "to": "mail.to",
    "cc": "mail.cc",
    "bcc": "mail.bcc",
    "subject": "mail.subject",
    "html": "mail.html",
    "text": "mail.text",
    "headers": "mail.headers",
    "preheader": "mail.previewTitle",
    "variables": "mail.params",
}


def suppression_message(error: RecipientsSuppressed) -> str:
    first = error.addresses[0] if error.addresses else ""
    return SUPPRESSION_MESSAGES.get(error.reasons.get(first, ""), UNAVAILABLE_RECEIVER)


# (class, status, message): the first class that matches wins.
_ERRORS: tuple[tuple[type[PosthouseError], int, Callable[[Any], str]], ...] = (
    (Unauthenticated, 401, lambda error: INVALID_KEY),
    (ApiKeyNotFound, 404, lambda error: "ExternalMailApiKey not found"),
    (Forbidden, 403, lambda error: KEY_NOT_ACTIVE),
    (WorkspaceSuspended, 403, lambda error: KEY_NOT_ACTIVE),
    (QuotaExceeded, 402, lambda error: "Not enough resources on the user balance"),
    (SenderNotFound, 404, lambda error: "User Domain not found"),
    (DomainNotVerified, 404, lambda error: "User Domain not found"),
    (TemplateNotFound, 404, lambda error: "TemplateMailUser not found by id"),
    (MessageNotFound, 404, lambda error: "MailUuid not found"),
    (EmailNotFound, 404, lambda error: "MailUuid not found"),
    (RecipientsSuppressed, 422, suppression_message),
    (AttachmentTypeForbidden, 400, lambda error: "Attachments type forbidden"),
    (AttachmentTooLarge, 400, lambda error: "Attachments size more than allowed"),
    (AttachmentRejected, 400, lambda error: "Attachments parse failed"),
    (TemplateInvalid, 400, lambda error: "HTML template is not valid"),
    (TemplateRenderFailed, 400, lambda error: "HTML template is not valid"),
    (MissingVariables, 400, lambda error: "mail.params lacks " + ", ".join(error.names)),
    (RateLimited, 429, lambda error: "ThrottlerException: Too Many Requests"),
    (
        ServiceUnavailable,
        503,
        lambda error: "Email processing service is temporarily unavailable",
    ),
)


def _message(error: PosthouseError) -> str:
    field = error.field
    if field in FIELD_NAMES and error.detail.startswith(field):
        return FIELD_NAMES[field] + error.detail[len(field) :]
    return error.detail


def status_and_message(error: PosthouseError) -> tuple[int, str]:
    for kind, status, wording in _ERRORS:
        if isinstance(error, kind):
            return status, wording(error)
    return error.status_code, _message(error)


def render_error(error: PosthouseError) -> Response:
    status, message = status_and_message(error)
    headers = error_headers(error)
    body = {"message": bounded(message), "error": _phrase(status), "statusCode": status}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ExternalMailError, "description": description}
    for code, description in {
        400: "Request validation error; Attachments parse failed, Attachments size more "
        "than allowed, Attachments type forbidden, HTML template is not valid",
        401: "Invalid API key (X-Api-Key missing or not a key)",
        402: "Not enough resources on the user balance (monthly quota)",
        403: "API key is not active",
        404: "ExternalMailApiKey not found, User Domain not found, TemplateMailUser not "
        "found by id",
        405: "Method not allowed",
        408: "The request body did not arrive in time",
        409: "A request with this idempotencyKey is still being processed (Retry-After)",
        413: "Request body too large",
        422: "Recipient is unavailable: unsubscribed, complained, does not exist, unavailable",
        429: "Rate limited (Retry-After)",
        503: "Email processing service is temporarily unavailable; nothing was stored",
    }.items()
}
