"""Seed 002's request and response bodies, as its document shows them.

Types are checked here (a number where a string belongs is a 412 naming the field);
every rule about the values (addresses, CR/LF, sizes, templates) is the shared
validation's. Fields the document does not name are ignored, as its API does.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Contact(_Body):
    email: StrictStr
    name: StrictStr | None = None


class OptionalContact(_Body):
    """``from`` and ``reply_to``: the email is required only where the document says."""

    email: StrictStr | None = None
    name: StrictStr | None = None


class PersonalisationFields(_Body):
    common_fields: dict[str, Any] | None = None
    # [{"address": {"tag": "value"}}, ...]
    unique_fields: list[dict[str, dict[str, Any]]] | None = None


class MailBody(_Body):
    html: StrictStr | None = None
    text: StrictStr | None = None
    personalisation_fields: PersonalisationFields | None = None
    # Where the document's first example puts it (beside personalisation_fields).
    unique_fields: list[dict[str, dict[str, Any]]] | None = Field(
        None, description="Also read here, where the document's first example puts it"
    )


class MailHeaders(_Body):
    subject: StrictStr | None = None
    message_id: StrictStr | None = None
    from_: OptionalContact | None = Field(None, alias="from")
    to: list[Contact] | None = None
    reply_to: OptionalContact | None = None
    cc: list[Contact] | None = None
    bcc: list[Contact] | None = None
    custom_headers: dict[str, StrictStr | list[StrictStr]] | None = None


class MailOptions(_Body):
    group_name: StrictStr | None = None
    template_id: StrictStr | StrictInt | None = None
    track_opens: bool | None = None
    track_links: bool | None = None
    unsubscribe_redirect_url: StrictStr | None = None


class AttachmentData(_Body):
    filename: StrictStr | None = None
    data: StrictStr | None = Field(None, description="base64")
    path: StrictStr | None = Field(
        None, description="Refused (412): posthouse never opens a path from a request"
    )
    content_id: StrictStr | None = None


class AttachmentOptions(_Body):
    track: bool | None = None


class MailAttachments(_Body):
    data: list[AttachmentData] | None = None
    options: AttachmentOptions | None = None


class MailRequest(_Body):
    body: MailBody | None = None
    headers: MailHeaders | None = None
    options: MailOptions | None = None
    attachments: MailAttachments | None = None


class MailTransaction(BaseModel):
    id: str


class MailAccepted(BaseModel):
    """One transaction per recipient (to, cc and bcc): its delivery's id."""

    transactions: list[MailTransaction]


class MailFieldErrors(BaseModel):
    """The 412 form: each field's messages."""

    errors: dict[str, list[str]]


class MailErrorDetail(BaseModel):
    domain: str
    reason: str
    message: str | MailFieldErrors
    locationType: str
    location: str


class MailErrorList(BaseModel):
    errors: list[MailErrorDetail]


class MailErrorBody(BaseModel):
    code: int
    message: str | MailFieldErrors
    error: MailErrorList
