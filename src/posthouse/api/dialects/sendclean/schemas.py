"""Seed 003's request and response models, and their OpenAPI documentation.

The models parse the JSON bodies (strict types, unknown fields refused by name) after the
door has read them within its bounds (api.multipart.json_object); the rules on what they
hold (addresses, headers, files, sizes) are the shared ones (sending/validation.py).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from posthouse.api import documented

STRICT = ConfigDict(strict=True, extra="forbid")


class Recipient(BaseModel):
    model_config = STRICT

    email: str = Field(description="The recipient's address")
    name: str | None = Field(None, description="Optional display name")
    type: Literal["to", "cc", "bcc"] = Field("to", description="to (the default), cc or bcc")


class Attachment(BaseModel):
    model_config = STRICT

    type: str | None = Field(None, description="MIME type of the file")
    name: str = Field(description="File name")
    content: str = Field(description="The file, base64-encoded")


class Image(BaseModel):
    model_config = STRICT

    type: str = Field(description='MIME type; must start with "image/"')
    name: str = Field(description='The Content ID: <img src="cid:NAME"> in the HTML')
    content: str = Field(description="The image, base64-encoded")


HEADERS_DOC = (
    "Extra headers. Reply-To sets the reply address; X-Unique-Id tags the message for "
    "getMessageInfo (and is sent on); X-STes-TrackOpen (yes/no), X-STes-TrackClick "
    "(html/text/both/no), X-STes-Autotext, X-STes-AutoHtml (yes/no), "
    "X-STes-TrackingDomain, X-STes-SigningDomain and X-STes-ReturnPathDomain (domains of "
    "the account) are controls, never sent on"
)


class MessageFields(BaseModel):
    model_config = STRICT

    subject: str | None = Field(None, description="The subject")
    from_email: str | None = Field(None, description="A sender of the account")
    from_name: str | None = Field(None, description="Optional display name of the sender")
    to: list[Recipient] = Field(default_factory=list, description="Recipients")
    headers: dict[str, str] = Field(default_factory=dict, description=HEADERS_DOC)
    attachments: list[Attachment] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list, description="Inline images by Content-ID")


class MailMessage(MessageFields):
    html: str | None = Field(None, description="HTML content (html or text is required)")
    text: str | None = Field(None, description="Text content (html or text is required)")


class TemplateMessage(MessageFields):
    template_id: str | int = Field(description="A stored template: tpl_… id or its number")
    dynamic_value: dict[str, Any] | None = Field(
        None, description="Values for the template's fields, case-sensitive"
    )


class Credentials(BaseModel):
    model_config = STRICT

    owner_id: str = Field(description="The account (workspace) id")
    token: str = Field(description="A workspace key (posthouse key create)")
    smtp_user_name: str = Field(description="The key's name (posthouse key create --name)")


class SendMailBody(Credentials):
    message: MailMessage


class SendTemplateBody(Credentials):
    message: TemplateMessage


class MessageInfoBody(BaseModel):
    model_config = STRICT

    owner_id: str = Field(description="The account (workspace) id")
    token: str = Field(description="A workspace key (posthouse key create)")
    smtp_user_name: str | None = Field(None, description="The key's name; checked when given")
    x_unique_id: str = Field(description="The X-Unique-Id the messages were sent with")
    skip_page: int = Field(0, description="Page to return, from 0 (100 copies per page)")


class Success(BaseModel):
    status: Literal["success"]
    message: str


class HitData(BaseModel):
    ip: list[str]
    ua: list[str]
    time: list[int] = Field(description="Epoch milliseconds")


class MessageInfo(BaseModel):
    subject: str
    sender: str
    email: str
    sendFrom: str = Field(description='Not recorded by posthouse: always "0.0.0.0"')
    mailSize: int = Field(description="Bytes of HTML, text and files as accepted")
    attchSize: int = Field(description="Bytes of the files")
    status: str = Field(
        description="queued, deferred, sent, delivered, bounced, rejected or complained"
    )
    time: int = Field(description="When the message was accepted, epoch milliseconds")
    open: int
    openData: HitData
    clickData: HitData
    click: int


class MessageInfoList(BaseModel):
    status: Literal["success"]
    message_data: list[MessageInfo]


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": documented.json_request_body(model)}


def _query(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


TEMPLATE_GET_DOC: dict[str, Any] = {
    "parameters": [
        _query("owner_id", "The account (workspace) id"),
        _query("token", "A workspace key"),
        _query("smtp_user_name", "The key's name"),
        _query("template_id", "A stored template: tpl_… id or its number"),
        _query("subject", "The subject"),
        _query("from_email", "A sender of the account"),
        _query("to", "The recipient's address"),
        {
            "name": "dynamic_value",
            "in": "query",
            "required": False,
            "style": "deepObject",
            "explode": True,
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            "description": "dynamic_value[NAME]=value, one per template field",
        },
    ]
}
