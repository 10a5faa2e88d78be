"""How the native API (seed 000) words and shapes the domain errors.

Services raise errors with neutral text and data (``posthouse.errors``); this module owns
seed 000's words ("Sender email is not found in platform!", ...) and its field names
(``from``, ``replyTo``, ``body``), and renders ``{"status": N, "message": "..."}``.
"""

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from posthouse.api.errors import bounded, error_headers
from posthouse.errors import (
    AttachmentTypeForbidden,
    MessageNotFound,
    PosthouseError,
    QuotaExceeded,
    RecipientsSuppressed,
    SenderNotFound,
    ServiceUnavailable,
    WorkspaceSuspended,
)


class ErrorBody(BaseModel):
    status: int
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Validation error, missing template variables, monthly quota exceeded, "
        "or access suspended",
        401: "Token headers missing",
        404: "Sender not registered with these tokens, email or template not found",
        409: "Idempotency key reused or in flight; sending domain not verified",
        413: "Request, attachment or message too large",
        422: "Attachment refused, every recipient suppressed, or content does not compile",
        429: "Rate limited",
        503: "The database is unavailable: nothing was stored; retry after Retry-After",
    }.items()
}


class SenderNotRegistered(SenderNotFound):
    """Reply by subject names its sender in the query: seed 000 words that refusal apart."""


# A SendRequest field's canonical name -> the native payload's.
FIELD_NAMES = {
    "sender": "from",
    "reply_to": "replyTo",
    "html": "body",
    "recipient_variables": "recipientVariables",
    "track_opens": "trackOpens",
    "track_clicks": "trackClicks",
    "unsubscribe_redirect_url": "unsubscribeRedirectUrl",
    "signing_domain": "signingDomain",
    "return_path_domain": "returnPathDomain",
    "tracking_domain": "trackingDomain",
}

_WORDING: dict[type[PosthouseError], Callable[[Any], str]] = {
    SenderNotRegistered: lambda error: "Sender email not registered",
    SenderNotFound: lambda error: "Sender email is not found in platform!",
    MessageNotFound: lambda error: f"No API e-mail found for referenceId {error.reference}",
    QuotaExceeded: lambda error: "Monthly e-mail quota exceeded",
    # Seed 000's message, with an en dash.
    WorkspaceSuspended: lambda error: f"API access suspended \u2013 {error.reason}",
    AttachmentTypeForbidden: lambda error: f"Attachments type forbidden: {error.filename!r}",
    ServiceUnavailable: lambda error: "The service is temporarily unavailable; try again shortly",
    RecipientsSuppressed: lambda error: (
        "All recipients are on the suppression list: " + ", ".join(error.addresses)
    ),
}


def native_message(error: PosthouseError) -> str:
    for cls in type(error).__mro__:
        wording = _WORDING.get(cls)
        if wording is not None:
            return wording(error)
    field = error.field
    if field in FIELD_NAMES and error.detail.startswith(field):
        return FIELD_NAMES[field] + error.detail[len(field) :]
    return error.detail


def render_error(error: PosthouseError) -> JSONResponse:
    body: dict[str, Any] = {
        "status": error.status_code,
        "message": bounded(native_message(error)),
    }
    if isinstance(error, RecipientsSuppressed):
        body["suppressed"] = error.addresses
    headers = error_headers(error)
    return JSONResponse(body, status_code=error.status_code, headers=headers)
