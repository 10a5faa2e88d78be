"""submit() and the replies: the one path from a request to durable queue rows.

Front doors reach these through ``sending.accept``. Invariant: nothing here commits. The
caller's transaction holds the message, its files and one delivery per envelope
recipient; the API answers 2xx only after that commit.
"""

import dataclasses
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from ulid import ULID

from posthouse.accounts import service as accounts_service
from posthouse.addresses import Address, parse_address
from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Attachment, Delivery, Message, Sender, UseCase
from posthouse.domains import service as domains_service
from posthouse.errors import MessageNotFound, RecipientsSuppressed, SenderNotFound, ValidationFailed
from posthouse.protections import idempotency, quota, reputation, suppression
from posthouse.sending import engagement as engagement_options
from posthouse.sending.content import ContentStep
from posthouse.sending.ids import parse_reference_id
from posthouse.sending.repository import MessageRepository, row
from posthouse.sending.schemas import (
    Caller,
    QueuedDelivery,
    SendRequest,
    StoredMessage,
    Thread,
    ValidSend,
)
from posthouse.sending.validation import SendLimits, validate_send

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv)\s*:\s*)+", re.IGNORECASE)


@dataclass
class SubmitOptions:
    queue_lifetime: timedelta = timedelta(days=5)
    limits: SendLimits = field(default_factory=SendLimits)
    api: str = "native"
    # Seed 001's automatic duplicate detection: a front door without an idempotency key
    # sets a window, and an identical send within it returns the earlier message.
    duplicate_window: timedelta | None = None
    # Settings.require_verified_domains; on unless a front door passes the operator's "off".
    require_verified_domain: bool = True
    verified_domains: domains_service.VerifiedDomainCache | None = None
    # Nothing is written after the message (no idempotency record to store with it), so
    # the message may commit on its own (MessageRepository.add). Set by sending.accept.
    last_write: bool = False
    # Where quota reservations are side writes (protections.side); None: in the session.
    side_engine: AsyncEngine | None = None
    # Runs on the request before validation (templates render there); None: as given.
    content: ContentStep | None = None
    # Seed 004: the use case the email is sent through: its history lists by it, its
    # engagement defaults apply (sending.engagement) and so do its suppressions.
    use_case: UseCase | None = None
    # Recipient kinds (to, cc, bcc) the send is for: one of them suppressed refuses the
    # whole send (seed 001 answers with the uuid of the mail to its one "to"). Otherwise
    # only a send whose every recipient is suppressed is refused.
    required_kinds: frozenset[str] = frozenset()


@dataclass
class Accepted:
    message: StoredMessage
    send: ValidSend
    deliveries: list[QueuedDelivery]
    suppressed: list[str] = field(default_factory=list)
    duplicate: bool = False  # an earlier identical message, returned instead of a new one


async def submit(
    session: AsyncSession,
    *,
    caller: Caller,
    request: SendRequest,
    options: SubmitOptions,
    thread: Thread | None = None,
) -> Accepted:
    """Render the content, validate, apply the sender's rules and store the message with
    its queue rows."""
    if options.content is not None:
        request = await options.content.prepare(session, caller=caller, request=request)
    send = await _with_send_domains(
        session, caller=caller, send=validate_send(request, options.limits)
    )
    sender = await sender_for(session, caller=caller, from_email=send.sender.email)
    reputation.ensure_not_suspended(caller.workspace)
    if options.require_verified_domain:
        await domains_service.ensure_can_send(
            session,
            workspace_id=caller.workspace.id,
            email=send.sender.email,
            cache=options.verified_domains,
        )
    return await _store(
        session, caller=caller, sender=sender, send=send, options=options, thread=thread
    )


async def _with_send_domains(
    session: AsyncSession, *, caller: Caller, send: ValidSend
) -> ValidSend:
    """``send`` once its signing, return-path and tracking domains are known to be the
    workspace's, the return path as the domain its bounces come back to (no query when
    it asks for none)."""
    asked = domains_service.SendDomains(
        send.signing_domain, send.return_path_domain, send.tracking_domain
    )
    checked = await domains_service.send_domains(
        session, workspace_id=caller.workspace.id, asked=asked
    )
    if checked == asked:
        return send
    return dataclasses.replace(send, return_path_domain=checked.return_path_domain)


async def sender_for(session: AsyncSession, *, caller: Caller, from_email: str) -> Sender:
    """The sender the message goes out as: a caller bound to one sender sends only as
    that (an address, or any of a domain-wide ``@domain`` sender); a workspace caller as
    any sender of its workspace. Anything else is SenderNotFound."""
    if caller.sender is None:
        return await accounts_service.sender_of_workspace(
            session, workspace_id=caller.workspace.id, from_email=from_email
        )
    if not accounts_service.sends_as(caller.sender, from_email):
        raise SenderNotFound()
    return caller.sender


async def _store(
    session: AsyncSession,
    *,
    caller: Caller,
    sender: Sender,
    send: ValidSend,
    options: SubmitOptions,
    thread: Thread | None,
) -> Accepted:
    workspace = caller.workspace
    hashed = content_hash(send)
    if options.duplicate_window is not None:
        earlier = await idempotency.find_duplicate(
            session, workspace_id=workspace.id, content_hash=hashed, within=options.duplicate_window
        )
        if earlier is not None:
            # The earlier message's recipients, as its own answer named them.
            queued = await MessageRepository(session).deliveries(earlier.id)
            return Accepted(
                message=StoredMessage.of(earlier),
                send=send,
                deliveries=[
                    QueuedDelivery(d.id, d.recipient, d.kind, d.status, d.attempts) for d in queued
                ],
                duplicate=True,
            )
    now = utcnow()
    message_row, attachment_rows, delivery_rows = _rows(
        caller=caller,
        sender=sender,
        send=send,
        options=options,
        thread=thread,
        hashed=hashed,
        now=now,
    )
    suppressed = await MessageRepository(session).add(
        message_row,
        attachment_rows,
        delivery_rows,
        now=now,
        # With a quota, the reservation below is written after the insert; with required
        # kinds, a suppressed one refuses the send after it: neither may autocommit.
        last_write=options.last_write
        and not quota.applies(workspace)
        and not options.required_kinds,
    )
    addresses = [d["recipient"] for d in delivery_rows]
    stored = [d for d in delivery_rows if d["recipient"] not in suppressed]
    required = [
        d["recipient"]
        for d in delivery_rows
        if d["kind"] in options.required_kinds and d["recipient"] in suppressed
    ]
    if not stored or required:
        refused = required or addresses
        raise RecipientsSuppressed(
            ("all recipients are suppressed: " if not stored else "recipients are suppressed: ")
            + ", ".join(refused),
            addresses=refused,
            reasons=await suppression.reasons(
                session,
                workspace_id=workspace.id,
                addresses=refused,
                use_case_id=options.use_case.id if options.use_case else None,
            ),
        )
    # Counted after the insert, so only the recipients stored count; a refusal raises,
    # and the request's rollback takes the message with it.
    await quota.reserve(
        session,
        workspace=workspace,
        recipients=len(stored),
        message_id=message_row["id"],
        now=now,
        side_engine=options.side_engine,
    )
    message = StoredMessage(
        id=message_row["id"],
        created_at=now,
        from_email=send.sender.email,
        from_name=send.sender.name,
        to=message_row["to"],
        cc=message_row["cc"],
        bcc=message_row["bcc"],
        reply_to=message_row["reply_to"],
        subject=send.subject,
        html=send.html,
        text=send.text,
        message_id_header=message_row["message_id_header"],
    )
    deliveries = [
        QueuedDelivery(d["id"], d["recipient"], d["kind"], d["status"], d["attempts"])
        for d in stored
    ]
    return Accepted(
        message=message,
        send=send,
        deliveries=deliveries,
        suppressed=[a for a in addresses if a in suppressed],
    )


def _rows(
    *,
    caller: Caller,
    sender: Sender,
    send: ValidSend,
    options: SubmitOptions,
    thread: Thread | None,
    hashed: str,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The message's row, its files' and one delivery per envelope recipient."""
    workspace = caller.workspace
    message_id = new_id()
    domain = send.sender.email.rsplit("@", 1)[1]
    engagement = engagement_options.resolve(send, workspace, options.use_case)
    use_case_id = options.use_case.id if options.use_case else None
    personal = send.personalisation
    message_row = row(
        Message,
        id=message_id,
        created_at=now,
        workspace_id=workspace.id,
        sender_id=sender.id,
        api=options.api,
        from_email=send.sender.email,
        from_name=send.sender.name,
        to=[a.as_json() for a in send.to],
        cc=[a.as_json() for a in send.cc],
        bcc=[a.as_json() for a in send.bcc],
        reply_to=[a.as_json() for a in send.reply_to],
        subject=send.subject,
        subject_key=subject_key(send.subject),
        html=send.html,
        text=send.text,
        headers=send.headers,
        tags=send.tags,
        message_id_header=f"<{ULID.from_uuid(message_id)}@{domain}>",
        in_reply_to=thread.in_reply_to if thread else None,
        references=thread.references if thread else None,
        original_message_id=thread.original_message_id if thread else None,
        content_hash=hashed,
        external_id=send.external_id,
        track_opens=engagement.track_opens,
        track_clicks=engagement.track_clicks,
        track_text_clicks=engagement.track_text_clicks,
        unsubscribe=engagement.unsubscribe,
        unsubscribe_redirect_url=engagement.unsubscribe_redirect_url,
        attachment_count=len(send.attachments),
        template_version_id=send.template_version_id,
        variables=personal.variables if personal else None,
        recipient_variables=personal.recipients if personal else None,
        subject_template=personal.subject_template if personal else None,
        preheader=send.preheader,
        auto_text=send.auto_text,
        signing_domain=send.signing_domain,
        return_path_domain=send.return_path_domain,
        tracking_domain=send.tracking_domain,
        use_case_id=use_case_id,
        # From the workspace as loaded with the credentials: no query of its own.
        tier=workspace.reputation_tier,
    )
    attachment_rows = [
        row(
            Attachment,
            message_id=message_id,
            position=position,
            filename=a.filename,
            content_type=a.content_type,
            content_id=a.content_id,
            inline=a.content_id is not None,
            size=len(a.data),
            sha256=a.sha256,
            data=a.data,
            track=a.track,
        )
        for position, a in enumerate(send.attachments)
    ]
    expires_at = now + options.queue_lifetime
    delivery_rows = [
        row(
            Delivery,
            message_id=message_id,
            workspace_id=workspace.id,
            recipient=recipient,
            kind=kind,
            next_attempt_at=now,
            expires_at=expires_at,
            id=new_id(),
            tracking_token=secrets.token_urlsafe(18),
            created_at=now,
            updated_at=now,
            from_domain=domain.lower(),
            use_case_id=use_case_id,
            state="sent",
        )
        for kind, recipient in send.envelope_recipients()
    ]
    return message_row, attachment_rows, delivery_rows


@dataclass
class ReplyResult:
    accepted: Accepted
    original: Message | None


async def reply_to_reference(
    session: AsyncSession,
    *,
    caller: Caller,
    reference_id: str,
    request: SendRequest,
    options: SubmitOptions,
) -> ReplyResult:
    """Reply in the thread of one of this sender's emails. ``request.to`` defaults to the
    original's sender; the subject is the original's with exactly one ``Re: ``."""
    original = await _own_message(session, caller=caller, reference_id=reference_id)
    if original is None:
        raise MessageNotFound(reference_id)
    request.sender = _address_of(original)
    request.subject = reply_subject(original.subject, limit=options.limits.max_subject)
    if not request.to:
        request.to = [_address_of(original)]
    accepted = await submit(
        session, caller=caller, request=request, options=options, thread=_thread(original)
    )
    return ReplyResult(accepted, original)


async def reply_to_subject(
    session: AsyncSession,
    *,
    caller: Caller,
    from_email: str,
    subject: str,
    request: SendRequest,
    options: SubmitOptions,
) -> ReplyResult:
    """Reply to the sender's most recent email with this subject (``Re:`` prefixes
    ignored); with none, start a new thread. ``request.to`` defaults to the sender."""
    # Parsed first, so CR/LF/NUL or a malformed address is a 400 like in any other send.
    sender = parse_address(from_email, field="sender")
    if not strip_reply_prefix(subject):
        # "Re: " and nothing else is no subject to match or to start a thread with.
        raise ValidationFailed("subject is required", field="subject")
    owner = await sender_for(session, caller=caller, from_email=sender.email)
    original = await MessageRepository(session).latest_by_subject(
        sender_id=owner.id, subject_key=subject_key(subject)
    )
    request.sender = sender
    request.subject = reply_subject(
        original.subject if original else subject, limit=options.limits.max_subject
    )
    if not request.to:
        request.to = [sender]
    thread = _thread(original) if original else None
    accepted = await submit(session, caller=caller, request=request, options=options, thread=thread)
    return ReplyResult(accepted, original)


async def get_message(
    session: AsyncSession, *, caller: Caller, reference_id: str
) -> tuple[Message, list[Delivery]]:
    message = await _own_message(session, caller=caller, reference_id=reference_id)
    if message is None:
        raise MessageNotFound(reference_id)
    return message, await MessageRepository(session).deliveries(message.id)


async def _own_message(
    session: AsyncSession, *, caller: Caller, reference_id: str
) -> Message | None:
    """The message, if it exists and belongs to the caller (its workspace, and its bound
    sender if any): otherwise None, so "not yours" and "does not exist" look the same."""
    message_id = parse_reference_id(reference_id)
    if message_id is None:
        return None
    message = await MessageRepository(session).get(message_id, workspace_id=caller.workspace.id)
    if message is None or (caller.sender is not None and message.sender_id != caller.sender.id):
        return None
    return message


async def attachment_summaries(session: AsyncSession, *, message_id: uuid.UUID) -> list[Attachment]:
    return await MessageRepository(session).attachments_without_data(message_id)


def _address_of(message: Message) -> str:
    return Address(message.from_email, message.from_name).formatted()


def _thread(original: Message) -> Thread:
    references = " ".join(filter(None, [original.references, original.message_id_header]))
    # RFC 5322 lets References grow without bound; keep the first and the latest ids.
    ids = references.split()
    if len(ids) > 20:
        ids = ids[:1] + ids[-19:]
    return Thread(
        in_reply_to=original.message_id_header,
        references=" ".join(ids),
        original_message_id=original.id,
    )


def strip_reply_prefix(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject).strip()


def reply_subject(subject: str, *, limit: int) -> str:
    """The subject with exactly one ``Re: ``, which is left off when it would make the
    subject longer than ``limit`` (the client did not write it)."""
    stripped = strip_reply_prefix(subject)
    return f"Re: {stripped}" if len(stripped) + 4 <= limit else stripped


def subject_key(subject: str) -> str:
    normal = " ".join(strip_reply_prefix(subject).casefold().split())
    return hashlib.sha256(normal.encode()).hexdigest()[:32]


def content_hash(send: ValidSend) -> str:
    """What makes two sends "the same email" for automatic duplicate detection."""
    digest = hashlib.sha256()
    parts = [
        send.sender.email,
        ",".join(sorted(r for _, r in send.envelope_recipients())),
        send.subject,
        send.html or "",
        send.text or "",
        send.preheader or "",
        orjson.dumps(send.personalisation, option=orjson.OPT_SORT_KEYS).decode()
        if send.personalisation
        else "",
        *(f"{a.filename}:{a.sha256}" for a in send.attachments),
    ]
    identity = (send.auto_text, send.signing_domain, send.return_path_domain, send.tracking_domain)
    if identity != (True, None, None, None):
        # Only when asked for: the hashes of every other send stay what they were.
        parts.append(repr(identity))
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()
