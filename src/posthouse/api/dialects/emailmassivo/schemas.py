"""Seed 001's request and response bodies, as posthouse reads and documents them.

Types are checked here (strict, unknown fields refused); the content rules (addresses,
headers, sizes, files) are the shared ones (sending.validation), reached through the
SendRequest the door builds.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from posthouse.api import documented

_STRICT = ConfigDict(strict=True, extra="forbid")


class Party(BaseModel):
    """A recipient or the sender: one address and its display name."""

    model_config = _STRICT

    email: str = Field(description="One address", json_schema_extra={"maxLength": 254})
    name: str | None = Field(None, description="Display name", json_schema_extra={"maxLength": 200})


_ADDRESSES = Field(
    None,
    description="One address, or several separated by commas (or a list of them); each "
    "gets its own uuid, or an error, in additionalRecipients",
    json_schema_extra={
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "maxItems": 50},
            {"type": "null"},
        ]
    },
)


class MailFields(BaseModel):
    model_config = _STRICT

    to: Party
    from_: Party = Field(alias="from", description="A sender of the key's workspace")
    subject: str | None = Field(None, json_schema_extra=documented.SUBJECT)
    previewTitle: str | None = Field(
        None, description="Preheader, up to 255 characters", json_schema_extra={"maxLength": 255}
    )
    headers: Any = Field(
        None,
        description="Custom headers (name: value). Return-Path, List-Unsubscribe, Errors-To, "
        "X-Complaints-To, Precedence, Feedback-ID, X-SenderName-MailID, X-Mailru-Msgtype and "
        "X-Postmaster-Msgtype are the service's own: the caller's are dropped",
        json_schema_extra={"type": "object", **documented.HEADERS},
    )
    cc: Any = _ADDRESSES
    bcc: Any = _ADDRESSES
    attachments: Any = Field(
        None,
        description='Files as [{"name.ext": "<base64>"}]: at most 5, 5 MB each; programs '
        "are refused",
        json_schema_extra={
            "type": "array",
            "maxItems": 5,
            "items": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    )


class SendMail(MailFields):
    html: str | None = Field(None, description="HTML body (html or text is required)")
    text: str | None = Field(None, description="Text body; generated from html when empty")


class TemplateMail(MailFields):
    idTemplateMailUser: int = Field(
        description="A stored template's number (posthouse template add ... --json: number)"
    )
    params: dict[str, Any] | None = Field(
        None, description="Values for the template's {{ variables }}"
    )


_KEY = Field(
    None,
    description="Your own key: the same key with the same request returns the first "
    "email's uuid and sends nothing; without one, an identical email within an hour does",
    json_schema_extra={"maxLength": 256},
)


class SendBody(BaseModel):
    model_config = _STRICT

    idempotencyKey: str | None = _KEY
    mail: SendMail


class TemplateBody(BaseModel):
    model_config = _STRICT

    idempotencyKey: str | None = _KEY
    mail: TemplateMail


class ExternalMailRecipient(BaseModel):
    email: str
    uuid: str | None = Field(None, description="The copy's uuid, when it was accepted")
    error: str | None = Field(None, description="Why it was not, when it was not")


class ExternalMailAccepted(BaseModel):
    uuid: str = Field(description="The email to mail.to")
    additionalRecipients: list[ExternalMailRecipient] | None = Field(
        None, description="One per cc and bcc address, when there are any"
    )
    warning: str | None = Field(None, description="Present when no idempotencyKey was given")


API_KEY_HEADER: dict[str, Any] = {
    "name": "X-Api-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "pattern": "^phk_[A-Za-z0-9_.-]+$"},
    "description": "A workspace key (posthouse key create) with the send scope",
}


def json_body_doc(body: type[BaseModel]) -> dict[str, Any]:
    """The operation's X-Api-Key header and JSON request body, for openapi_extra."""
    return {
        "parameters": [API_KEY_HEADER],
        "requestBody": documented.json_request_body(body),
    }
