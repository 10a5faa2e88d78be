"""How seed 002's transactional mail API ("everlytic") shapes the domain errors.

Every error is ``{"code", "message", "error": {"errors": [{"domain", "reason", "message",
"locationType", "location"}]}}``. A field that is wrong is the document's 412 form, its
message an object ``{"errors": {"<field>": ["The <field> ... ."]}}`` in the request's
own field names; the statuses, reasons and words are the document's where it shows them
and otherwise chosen in docs/compatibility.md ("Seed 002").
"""

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response

from posthouse.api.dialects.everlytic.schemas import MailErrorBody
from posthouse.api.errors import bounded, error_headers
from posthouse.errors import (
    AttachmentRejected,
    AttachmentTooLarge,
    DomainNotVerified,
    Forbidden,
    IdempotencyConflict,
    IdempotencyInFlight,
    MissingVariables,
    NotFound,
    PosthouseError,
    QuotaExceeded,
    RateLimited,
    RecipientsSuppressed,
    RequestTooLarge,
    SenderNotFound,
    TemplateInvalid,
    TemplateNotFound,
    TemplateRenderFailed,
    Unauthenticated,
    ValidationFailed,
    WorkspaceSuspended,
)

LOGIN_REQUIRED = "Login Required"
SEND_FAILED = "Send Failed - Unable to send: "

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": MailErrorBody, "description": description}
    for code, description in {
        400: "Formatted improperly, unverified sending domain, attachment refused, "
        "recipients suppressed, no quota, access suspended",
        401: "Login Required: missing or wrong credentials (or a key without the send scope)",
        404: "No such path",
        405: "Method not allowed",
        409: "Idempotency-Key reused with another request, or still in flight",
        412: "A field is missing or invalid: the field-error form",
        413: "Request or attachment too large",
        429: "Request limit",
        503: "The database is unavailable: nothing was stored; retry after Retry-After",
    }.items()
}


class UnknownSendingDomain(SenderNotFound):
    """The From address is not a sender of the caller's workspace: in the document's
    terms, an unverified domain (its example shows this case)."""

    def __init__(self, domain: str) -> None:
        super().__init__(f"Unverified Domain - {domain}")
        self.domain = domain


# A SendRequest field's canonical name -> the request's own field.
FIELD_NAMES = {
    "sender": "headers.from.email",
    "to": "headers.to",
    "cc": "headers.cc",
    "bcc": "headers.bcc",
    "reply_to": "headers.reply_to.email",
    "subject": "headers.subject",
    "html": "body.html",
    "text": "body.text",
    "headers": "headers.custom_headers",
    "external_id": "headers.message_id",
    "tags": "options.group_name",
    "tag": "options.group_name",
    "variables": "body.personalisation_fields.common_fields",
    "recipient_variables": "body.personalisation_fields.unique_fields",
    "track_opens": "options.track_opens",
    "track_clicks": "options.track_links",
    "unsubscribe_redirect_url": "options.unsubscribe_redirect_url",
}
_ADDRESS_FIELDS = ("sender", "to", "cc", "bcc", "reply_to")


def field_errors(field: str, sentence: str) -> dict[str, Any]:
    return {"errors": {field: [bounded(sentence)]}}


def _field_sentence(error: ValidationFailed) -> tuple[str, str]:
    """The request's field name and the document's kind of sentence for it."""
    canonical = error.field or ""
    if canonical not in FIELD_NAMES:
        if error.detail.startswith("The "):
            # Raised by this door, already in the request's words (routes.py).
            return canonical, error.detail
        return canonical, f"The {canonical} is invalid: {error.detail}."
    field = FIELD_NAMES[canonical]
    detail = error.detail
    if detail.startswith(canonical):
        detail = field + detail[len(canonical) :]
    if "is required" in error.detail or "at least one" in error.detail:
        return field, f"The {field} field is required."
    if canonical in _ADDRESS_FIELDS and "display name" in error.detail:
        field = field.removesuffix(".email") + ".name"
        return field, f"The {field} format is invalid: {detail}."
    if canonical in _ADDRESS_FIELDS and "at most" not in error.detail:
        return field, f"The {field} format is invalid."
    return field, f"The {field} is invalid: {detail}."


def _custom_headers(field: str | None) -> bool:
    """The shared validation's "headers", or this door's "headers.custom_headers.X-…"."""
    return field is not None and (field == "headers" or field.startswith("headers.custom_headers"))


@dataclass(frozen=True)
class _Shape:
    status: int
    domain: str
    reason: str
    location_type: str
    location: str


def _shape(error: PosthouseError) -> _Shape:
    match error:
        case Unauthenticated():
            return _Shape(401, "global", "required", "request", "authorization")
        case Forbidden():
            return _Shape(401, "global", "ForbiddenAccess", "request", "authorization")
        case SenderNotFound():
            # UnknownSendingDomain: the document's example for an unverified domain.
            return _Shape(400, "global", "invalid", "request", "default")
        case DomainNotVerified():
            return _Shape(400, "global", "UnverifiedDomain", "request", "default")
        case TemplateNotFound() | TemplateInvalid() | TemplateRenderFailed() | MissingVariables():
            return _Shape(412, "global", "invalidParameter", "request", "templateValidation")
        case ValidationFailed() if error.field is None:
            return _Shape(400, "global", "invalid", "body", "default")
        case ValidationFailed() if _custom_headers(error.field):
            return _Shape(412, "global", "CustomHeaders", "request", "sendValidation")
        case ValidationFailed():
            return _Shape(412, "global", "invalidParameter", "request", "sendValidation")
        case AttachmentTooLarge():
            return _Shape(413, "global", "Attachment", "body", "default")
        case AttachmentRejected():
            return _Shape(400, "global", "Attachment", "body", "default")
        case RequestTooLarge():
            return _Shape(413, "global", "invalid", "body", "default")
        case RecipientsSuppressed():
            return _Shape(400, "global", "Suppressed", "request", "suppressionValidation")
        case QuotaExceeded():
            return _Shape(400, "NoQuota", "NoQuota", "request", "sendValidation")
        case WorkspaceSuspended():
            return _Shape(400, "global", "ForbiddenAccess", "request", "bouncesValidation")
        case IdempotencyConflict() | IdempotencyInFlight():
            return _Shape(409, "global", "Duplicate", "headers", "default")
        case RateLimited():
            return _Shape(429, "usageLimit", "RequestLimit", "request", "default")
        case NotFound():
            return _Shape(404, "global", "invalid", "request", "default")
    return _Shape(error.status_code, "global", "invalid", "request", "default")


def _message(error: PosthouseError) -> str | dict[str, Any]:
    match error:
        case Unauthenticated():
            return LOGIN_REQUIRED
        case Forbidden():
            return "Forbidden Access"
        case UnknownSendingDomain() | DomainNotVerified():
            return SEND_FAILED + error.detail
        case SenderNotFound():
            return SEND_FAILED + "Unverified Domain"
        case TemplateNotFound():
            return field_errors(
                "options.template_id", "The selected options.template_id is invalid."
            )
        case TemplateInvalid() | TemplateRenderFailed():
            return field_errors("options.template_id", f"The template is invalid: {error.detail}.")
        case MissingVariables():
            return field_errors(
                "body.personalisation_fields", f"The template needs {error.detail}."
            )
        case ValidationFailed() if error.field is not None:
            return field_errors(*_field_sentence(error))
        case RecipientsSuppressed():
            return SEND_FAILED + "Suppressed - " + ", ".join(error.addresses)
        case QuotaExceeded():
            return SEND_FAILED + "No Quota"
        case WorkspaceSuspended():
            return SEND_FAILED + f"Account suspended - {error.reason}"
        case AttachmentRejected():
            return SEND_FAILED + error.detail
        case IdempotencyConflict() | IdempotencyInFlight():
            return f"Duplicate: {error.detail}"
        case RateLimited():
            return "Request Limit Exceeded"
        case NotFound():
            # One text for every 404, so no answer tells "not yours" from "does not exist".
            return "Not Found"
    return error.detail


def render_error(error: PosthouseError) -> Response:
    shape = _shape(error)
    message = _message(error)
    if isinstance(message, str):
        message = bounded(message)
    body = {
        "code": shape.status,
        "message": message,
        "error": {
            "errors": [
                {
                    "domain": shape.domain,
                    "reason": shape.reason,
                    "message": message,
                    "locationType": shape.location_type,
                    "location": shape.location,
                }
            ]
        },
    }
    headers = error_headers(error)
    return Response(
        orjson.dumps(body), status_code=shape.status, media_type="application/json", headers=headers
    )
