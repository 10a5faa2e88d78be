"""The worker's message content: built from the stored rows once per message, then
built and DKIM-signed once for every recipient whose copy is the common one.

A per-recipient hook (``RecipientHook``; personalisation, tracking links and unsubscribe
headers will differ per copy) may give one recipient a content of its own: only that
copy is then built and signed for that recipient.
"""

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from posthouse.db.models import Attachment, Message
from posthouse.domains.service import SendingIdentity
from posthouse.mime.builder import MimeAttachment, MimeContent, build_message
from posthouse.mime.dkim import signer as dkim_signer


class RecipientHook(Protocol):
    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None:
        """This recipient's own content, or None when the common ``content`` is theirs."""
        ...


class HookChain:
    """Hooks in turn, each given the content the one before produced (or the common one):
    personalisation first, then tracking on the personalised copy."""

    def __init__(self, *hooks: RecipientHook) -> None:
        self.hooks = hooks

    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None:
        own: MimeContent | None = None
        for hook in self.hooks:
            changed = hook.customise(
                message, own or content, recipient=recipient, delivery_id=delivery_id
            )
            own = changed or own
        return own


@dataclass
class MessageContent:
    """A message as the worker caches it, with the identity its copies go out with."""

    message: Message
    mime: MimeContent
    # Whose DKIM key signs: the message's signing domain's, else its From domain's; None
    # when that domain is not set up (unsigned).
    signing: SendingIdentity | None
    # The envelope sender's (VERP) domain: the message's own, else the From domain's
    # return-path domain; None: the From address itself.
    return_path_domain: str | None
    _signed: bytes | None = field(default=None, init=False)

    def signed_bytes(self) -> bytes:
        """Built and signed once: nothing in the common bytes depends on the recipient,
        and a message to a thousand recipients should not cost a thousand builds and
        signatures."""
        if self._signed is None:
            self._signed = dkim_signed(self.signing, build_message(self.mime))
        return self._signed

    def bytes_for(
        self, hook: RecipientHook | None, *, recipient: str, delivery_id: uuid.UUID
    ) -> bytes:
        """The signed bytes of one recipient's copy: the common ones unless ``hook``
        gives this recipient a content of its own."""
        if hook is not None:
            own = hook.customise(
                self.message, self.mime, recipient=recipient, delivery_id=delivery_id
            )
            if own is not None:
                return dkim_signed(self.signing, build_message(own))
        return self.signed_bytes()


def from_domain(message: Message) -> str:
    return message.from_email.rsplit("@", 1)[1].lower()


def identity_domains(message: Message) -> set[str]:
    """The domains whose sending identities a message's copies need."""
    return {from_domain(message), *filter(None, [message.signing_domain])}


def message_content(
    message: Message,
    attachments: list[Attachment],
    identities: dict[tuple[uuid.UUID, str], SendingIdentity],
) -> MessageContent:
    """The message as the worker sends it, given the identities of (at least) its
    ``identity_domains``."""
    own = identities.get((message.workspace_id, from_domain(message)))
    signing = (
        identities.get((message.workspace_id, message.signing_domain))
        if message.signing_domain
        else own
    )
    return MessageContent(
        message,
        mime_content(message, attachments),
        signing,
        message.return_path_domain or (own.return_path_domain if own else None),
    )


def dkim_signed(identity: SendingIdentity | None, data: bytes) -> bytes:
    """``data`` (build_message's output) signed with the domain's active key; unsigned
    when it has none. Either way every line still ends in CRLF."""
    if identity is None or identity.dkim_selector is None or identity.dkim_private_key_pem is None:
        return data
    signer = dkim_signer(identity.domain, identity.dkim_selector, identity.dkim_private_key_pem)
    return signer.sign(data, crlf=True)


def mime_content(message: Message, attachments: list[Attachment]) -> MimeContent:
    return MimeContent(
        from_email=message.from_email,
        from_name=message.from_name,
        to=[(a.get("name"), a["email"]) for a in message.to],
        cc=[(a.get("name"), a["email"]) for a in message.cc],
        reply_to=[(a.get("name"), a["email"]) for a in message.reply_to],
        subject=message.subject,
        html=message.html,
        text=message.text,
        headers=message.headers,
        message_id=message.message_id_header,
        date=message.created_at,
        in_reply_to=message.in_reply_to,
        references=message.references,
        attachments=tuple(
            MimeAttachment(a.filename, a.content_type, a.data, a.content_id, a.track)
            for a in attachments
        ),
        preheader=message.preheader,
        auto_text=message.auto_text,
    )
