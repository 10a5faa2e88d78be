"""The canonical request every front door translates into, and its validated form."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from posthouse.addresses import Address, address_key
from posthouse.db.models import Message, Sender, Workspace

AddressInput = str | Address


@dataclass(frozen=True)
class Caller:
    """Who is sending: a workspace, and the sender its credentials are bound to. A seed
    000 token pair is bound to one sender and sends only as that; a workspace key has no
    ``sender`` and sends as any sender of its workspace."""

    workspace: Workspace
    sender: Sender | None = None


@dataclass
class AttachmentInput:
    filename: str
    data: bytes
    content_type: str | None = None
    content_id: str | None = None  # set for inline images referenced as cid:...
    track: bool = False  # served through a tracking link instead of attached


@dataclass(frozen=True)
class TemplateChoice:
    """A stored template as a request names it: ``tpl_<ULID>`` or its number in the
    workspace, and optionally a version (else the published one)."""

    ref: str | int
    version: int | None = None


@dataclass(frozen=True)
class Personalisation:
    """What delivery needs to render each recipient's copy: the sources (html and text
    are the message's own) and the values. ``recipients`` is keyed by lower-case address."""

    subject_template: str
    variables: dict[str, Any]
    recipients: dict[str, dict[str, Any]]


@dataclass
class SendRequest:
    """What a client asked for, as given: nothing here has been checked yet."""

    sender: AddressInput | None
    to: list[AddressInput]
    subject: str | None
    html: str | None = None
    text: str | None = None
    cc: list[AddressInput] = field(default_factory=list)
    bcc: list[AddressInput] = field(default_factory=list)
    reply_to: list[AddressInput] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[AttachmentInput] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    external_id: str | None = None
    # Engagement; None takes the default (sending.engagement.resolve).
    track_opens: bool | None = None
    track_clicks: str | None = None  # none, html, text or both
    unsubscribe: bool | None = None
    unsubscribe_redirect_url: str | None = None
    # False: an HTML-only message goes without a text part generated from its HTML.
    auto_text: bool = True
    # Domains of the caller's workspace the copies go out with instead of the From
    # domain's: DKIM d= and key, the envelope sender's (VERP) domain, the tracking links'
    # host. None: the From domain's identity and POSTHOUSE_PUBLIC_URL.
    signing_domain: str | None = None
    return_path_domain: str | None = None
    tracking_domain: str | None = None
    # A stored template (subject, html and text given here override its own), and the
    # values to render it, or the inline content when there is no template, with.
    template: TemplateChoice | None = None
    variables: dict[str, Any] | None = None
    recipient_variables: dict[str, Any] | None = None
    # A variable a recipient lacks renders empty instead of refusing the send (a door
    # whose document sends to recipients it gives no values for: seed 002).
    blank_missing_variables: bool = False
    preheader: str | None = None
    # Filled in by the content step (templates.content), never by a front door.
    template_version_id: uuid.UUID | None = None
    personalisation: Personalisation | None = None


@dataclass(frozen=True)
class Thread:
    """Threading headers for a reply (RFC 5322 section 3.6.4)."""

    in_reply_to: str
    references: str
    original_message_id: uuid.UUID


@dataclass
class ValidAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None
    sha256: str
    track: bool = False


@dataclass
class ValidSend:
    """A request that passed every rule: safe to store, render and send."""

    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    attachments: list[ValidAttachment]
    tags: list[str]
    external_id: str | None
    track_opens: bool | None
    track_clicks: str | None  # none, html, text or both; None: the default
    unsubscribe: bool | None
    unsubscribe_redirect_url: str | None
    preheader: str | None = None
    auto_text: bool = True
    # Normalised host names; whether they are the workspace's is domains.service's check.
    signing_domain: str | None = None
    return_path_domain: str | None = None
    tracking_domain: str | None = None
    template_version_id: uuid.UUID | None = None
    personalisation: Personalisation | None = None

    def envelope_recipients(self) -> list[tuple[str, str]]:
        """(kind, address) once per distinct address, to before cc before bcc."""
        seen: set[str] = set()
        result = []
        for kind, addresses in (("to", self.to), ("cc", self.cc), ("bcc", self.bcc)):
            for address in addresses:
                key = address_key(address.email)
                if key not in seen:
                    seen.add(key)
                    result.append((kind, address.email))
        return result


@dataclass(frozen=True)
class StoredMessage:
    """An accepted message as a front door answers with it: what was stored, as plain
    values (not an ORM instance, which a reader might expect to be in a session)."""

    id: uuid.UUID
    created_at: datetime
    from_email: str
    from_name: str | None
    to: list[dict[str, Any]]
    cc: list[dict[str, Any]]
    bcc: list[dict[str, Any]]
    reply_to: list[dict[str, Any]]
    subject: str
    html: str | None
    text: str | None
    message_id_header: str

    @classmethod
    def of(cls, message: Message) -> "StoredMessage":
        return cls(
            id=message.id,
            created_at=message.created_at,
            from_email=message.from_email,
            from_name=message.from_name,
            to=message.to,
            cc=message.cc,
            bcc=message.bcc,
            reply_to=message.reply_to,
            subject=message.subject,
            html=message.html,
            text=message.text,
            message_id_header=message.message_id_header,
        )


@dataclass(frozen=True)
class QueuedDelivery:
    """One recipient's queue row as stored."""

    id: uuid.UUID
    recipient: str
    kind: str
    status: str
    attempts: int
