"""The native API's (seed 000) request and response models and their OpenAPI documentation."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from posthouse.api import documented
from posthouse.sending.validation import DEFAULT_LIMITS as LIMITS

# The token and Idempotency-Key headers are read from request.headers and documented
# here: FastAPI's extraction of header parameters cost ~4% of the api's instructions per
# accepted send.
TOKEN_HEADERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": schema,
        "description": f"The {what} token issued with the sender (posthouse sender add)",
    }
    for name, what, schema in (
        ("X-Api-Access-Token", "access", documented.ACCESS_TOKEN),
        ("X-Api-Secret-Token", "secret", documented.SECRET_TOKEN),
    )
]
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": documented.IDEMPOTENCY_KEY,
    "description": "1 to 256 visible characters, your own per sender; the same request "
    "again within 24 hours returns the original response (Idempotency-Replayed: true) and "
    "sends nothing",
}


class EngagementPayload(BaseModel):
    """Engagement options of a send or reply; left out, the workspace's defaults apply."""

    trackOpens: bool | None = Field(None, description="Count opens with a pixel")
    trackClicks: str | None = Field(
        None, description="Rewrite links to count clicks: none, html, text or both"
    )
    trackAttachments: bool | None = Field(
        None, description="Serve the attachments through tracking links, counting each fetch"
    )
    unsubscribe: bool | None = Field(
        None, description="One-click unsubscribe (RFC 8058): List-Unsubscribe on every copy"
    )
    unsubscribeRedirectUrl: str | None = Field(
        None, description="Where the recipient lands after unsubscribing; implies unsubscribe"
    )


class IdentityPayload(BaseModel):
    """What a message goes out as, when not its From domain's defaults."""

    autoText: bool | None = Field(
        None, description="false: an HTML-only email gets no text part generated from it"
    )
    signingDomain: str | None = Field(
        None, description="DKIM-sign as this domain of the workspace (it needs an active key)"
    )
    returnPathDomain: str | None = Field(
        None,
        description="Bounces come back to this domain of the workspace (its return-path "
        "domain), or to one of its return-path domains",
    )
    trackingDomain: str | None = Field(
        None,
        description="Tracking and unsubscribe links on this host (a domain of the workspace "
        "or a host under one, pointed at posthouse), with the public URL's scheme",
    )


class SendEmailPayload(EngagementPayload, IdentityPayload):
    """The JSON ``payload`` part of ``POST /api/v1/emails``."""

    # Unknown fields are refused by name rather than ignored (api/multipart.py bounds
    # how many values a payload may hold before it is parsed).
    model_config = ConfigDict(populate_by_name=True, strict=True, extra="forbid")

    from_: str | None = Field(None, alias="from", description="Sender, bound to the tokens")
    to: list[str] = Field(
        default_factory=list,
        description="1 to 1000 addresses",
        json_schema_extra=documented.addresses(LIMITS.max_to, at_least=1),
    )
    cc: list[str] | None = Field(
        None,
        description="At most 50 addresses",
        json_schema_extra=documented.addresses(LIMITS.max_cc),
    )
    bcc: list[str] | None = Field(
        None,
        description="At most 50; never shown in headers",
        json_schema_extra=documented.addresses(LIMITS.max_bcc),
    )
    replyTo: list[str] | None = Field(
        None,
        description="At most 50 addresses",
        json_schema_extra=documented.addresses(LIMITS.max_reply_to),
    )
    subject: str | None = Field(
        None,
        description="1 to 998 characters; required unless the template has one",
        json_schema_extra=documented.SUBJECT,
    )
    body: str | None = Field(
        None, description="HTML body, required unless a template is given; a text part is derived"
    )
    text: str | None = Field(None, description="Optional plain-text alternative")
    headers: dict[str, str] | None = Field(
        None,
        description="Extra headers (X-...); those posthouse writes, trace and "
        "authentication headers are refused",
        json_schema_extra=documented.HEADERS,
    )
    template: str | int | None = Field(
        None,
        description="A stored template, by tpl_ id or number, instead of subject and body "
        "(given with a template, they override its own)",
    )
    templateVersion: int | None = Field(
        None, description="The template version to send; default the published one"
    )
    variables: dict[str, Any] | None = Field(
        None,
        description="Values for the template's {{ variables }}, for every recipient. "
        "Without a template, subject, body and text are rendered as templates with them",
    )
    recipientVariables: dict[str, dict[str, Any]] | None = Field(
        None,
        description='Values per recipient, over variables: {"alice@example.com": {...}}. '
        "A send lacking a variable the template needs is refused (400)",
    )

    @model_validator(mode="after")
    def _version_of_a_template(self) -> "SendEmailPayload":
        if self.templateVersion is not None and self.template is None:
            raise ValueError("templateVersion is given without a template")
        return self


class ReplyEmailPayload(EngagementPayload, IdentityPayload):
    """The JSON ``payload`` part of the reply endpoints."""

    model_config = ConfigDict(strict=True, extra="forbid")

    to: list[str] | None = Field(
        None,
        description="Defaults as documented per endpoint",
        json_schema_extra=documented.addresses(LIMITS.max_to),
    )
    cc: list[str] | None = Field(None, json_schema_extra=documented.addresses(LIMITS.max_cc))
    bcc: list[str] | None = Field(None, json_schema_extra=documented.addresses(LIMITS.max_bcc))
    replyTo: list[str] | None = Field(
        None, json_schema_extra=documented.addresses(LIMITS.max_reply_to)
    )
    body: str | None = Field(None, description="Required HTML body")
    text: str | None = None
    headers: dict[str, str] | None = Field(None, json_schema_extra=documented.HEADERS)


class EmailAccepted(BaseModel):
    """The email as queued (attachments omitted)."""

    referenceId: str = Field(description="ema_ followed by a ULID")
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    replyTo: list[str]
    subject: str
    body: str | None
    suppressed: list[str] | None = Field(None, description="Recipients not sent to, if any")


class ReplyAccepted(BaseModel):
    """The reply as queued (attachments omitted)."""

    referenceId: str = Field(description="ema_ followed by a ULID")
    originalReferenceId: str | None = Field(
        description="The email replied to; null when reply-by-subject started a new thread"
    )
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str] | None = Field(None, description="Present when the reply has cc")
    bcc: list[str] | None = Field(None, description="Present when the reply has bcc")
    replyTo: list[str] | None = Field(None, description="Present when the reply has replyTo")
    subject: str = Field(description="The original subject with exactly one 'Re: '")
    body: str | None
    suppressed: list[str] | None = Field(None, description="Recipients not sent to, if any")


def multipart_doc(payload: type[BaseModel]) -> dict[str, Any]:
    schema = {**payload.model_json_schema(by_alias=True), "description": documented.PAYLOAD}
    return {
        "parameters": [*TOKEN_HEADERS, IDEMPOTENCY_HEADER],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["payload"],
                        "properties": {
                            "payload": schema,
                            "attachments": documented.ATTACHMENTS,
                        },
                    },
                    "encoding": {"payload": {"contentType": "application/json"}},
                }
            },
        },
    }


class TimelineEvent(BaseModel):
    id: str
    type: str
    eventAt: datetime
    receivedAt: datetime
    data: dict[str, Any]


class RecipientStatus(BaseModel):
    email: str
    type: str = Field(description="to, cc or bcc")
    status: str = Field(description="queued, sending, deferred, sent, bounced, rejected, held")
    attempts: int
    lastAttemptAt: datetime | None
    nextAttemptAt: datetime | None
    sentAt: datetime | None
    lastSmtpCode: int | None
    lastSmtpReply: str | None
    failureClass: str | None = Field(
        description="why the last attempt failed: hard, soft, block, auth, content, "
        "infrastructure or unknown (docs/bounces.md)"
    )
    failureSubclass: str | None
    state: str = Field(description="sent, delivered, rejected, bounced or complained")
    openCount: int
    clickCount: int
    events: list[TimelineEvent] = Field(description="The recipient's events, in order")


class AttachmentInfo(BaseModel):
    filename: str
    contentType: str
    size: int


class EmailDetail(BaseModel):
    referenceId: str
    originalReferenceId: str | None
    messageId: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    replyTo: list[str]
    subject: str
    body: str | None
    text: str | None
    createdAt: datetime
    attachments: list[AttachmentInfo]
    recipients: list[RecipientStatus]
