"""ORM models: the one import point for every table. The migrations are the schema's truth."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from posthouse.db.base import Base, CreatedAtMixin, IdMixin, utcnow


class Workspace(IdMixin, CreatedAtMixin, Base):
    """A tenant: owns keys, senders, domains and messages; carries the reputation limits."""

    __tablename__ = "workspace"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    monthly_quota: Mapped[int | None] = mapped_column(Integer)
    max_bounce_rate: Mapped[float] = mapped_column(Float, default=0.05)
    max_complaint_rate: Mapped[float] = mapped_column(Float, default=0.001)
    rate_min_volume: Mapped[int] = mapped_column(Integer, default=100)
    rate_window_days: Mapped[int] = mapped_column(Integer, default=30)
    suspended_at: Mapped[datetime | None]
    suspension_reason: Mapped[str | None] = mapped_column(String(200))
    # Set when an operator lifts a suspension: rates are judged on events after it only,
    # so the bounces that caused the suspension do not suspend the workspace again.
    rates_reset_at: Mapped[datetime | None]
    # Engagement tracking for messages that do not say: off (transactional mail is
    # private by default). track_clicks: none, html, text or both.
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    track_clicks: Mapped[str] = mapped_column(String(5), default="none", server_default="none")
    # The tier its rates were last judged at (protections.reputation.tier_of); a message
    # records it at accept time.
    reputation_tier: Mapped[str] = mapped_column(String(16), default="new")


class ApiKey(IdMixin, CreatedAtMixin, Base):
    """A credential. Only hashes are stored: ``lookup_hash`` finds the row, ``secret_hash``
    is compared in constant time. A key bound to a sender may send only as that sender."""

    __tablename__ = "api_key"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"), index=True)
    sender_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sender.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200), default="send")
    revoked_at: Mapped[datetime | None]


class Sender(IdMixin, CreatedAtMixin, Base):
    """An address (``local@domain``) or a whole domain (``@domain``) a workspace sends from."""

    __tablename__ = "sender"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    domain_name: Mapped[str] = mapped_column(String(255), index=True)


class Domain(IdMixin, CreatedAtMixin, Base):
    """A sending domain ("email setup") with its DNS verification state."""

    __tablename__ = "domain"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    return_path_domain: Mapped[str] = mapped_column(String(255))
    verified_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]


class DkimKey(IdMixin, CreatedAtMixin, Base):
    """A DKIM key pair; the active one signs. Several selectors allow rotation."""

    __tablename__ = "dkim_key"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)

    domain_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("domain.id"), index=True)
    selector: Mapped[str] = mapped_column(String(63))
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_key_b64: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class DomainRecord(IdMixin, Base):
    """A DNS record the operator must publish, and whether it was last seen in DNS."""

    __tablename__ = "domain_record"

    domain_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("domain.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)


class UseCase(IdMixin, CreatedAtMixin, Base):
    """A named stream of mail bound to one sending domain (seed 004's email use case).
    It sends as ``from_email`` through ``sender_id``, a sender of that domain."""

    __tablename__ = "use_case"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"))
    domain_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("domain.id"), index=True)
    sender_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sender.id"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))  # transactional, marketing
    from_email: Mapped[str] = mapped_column(String(320))
    # Engagement defaults for its mail (sending.engagement); NULL: the workspace's.
    track_opens: Mapped[bool | None] = mapped_column(Boolean)
    track_clicks: Mapped[str | None] = mapped_column(String(5))


class Template(IdMixin, CreatedAtMixin, Base):
    """A workspace's stored template. Its content lives in immutable versions; the
    published one is what a send uses unless it names another. A deleted template keeps
    its versions: mail accepted before still renders from them."""

    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("workspace_id", "number"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"))
    # Per workspace, from 1: seed 001's numeric idTemplateMailUser. Never reused.
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    latest_version: Mapped[int] = mapped_column(Integer)
    published_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class TemplateVersion(IdMixin, CreatedAtMixin, Base):
    """One version of a template's content, never changed once written."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("template.id"))
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)


class Message(IdMixin, CreatedAtMixin, Base):
    """One accepted submission, as accepted. Recipients live on its deliveries."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_sender_subject", "sender_id", "subject_key", "created_at"),
        Index("ix_message_content", "workspace_id", "content_hash", "created_at"),
        Index("ix_message_workspace_created", "workspace_id", "created_at"),
        # Seed 003's getMessageInfo: a workspace's messages with one X-Unique-Id, in order.
        Index("ix_message_workspace_external", "workspace_id", "external_id", "created_at"),
    )

    # No foreign keys to workspace and sender here, nor on delivery and event: every
    # insert would share-lock the tenant's one row (migration 0003).
    workspace_id: Mapped[uuid.UUID]
    sender_id: Mapped[uuid.UUID | None]
    api: Mapped[str] = mapped_column(String(20), default="native")
    from_email: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(300))
    to: Mapped[list[Any]]
    cc: Mapped[list[Any]]
    bcc: Mapped[list[Any]]
    reply_to: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(Text)
    # A short digest of the subject, so reply-by-subject can use an index.
    subject_key: Mapped[str] = mapped_column(String(32))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]]
    tags: Mapped[list[Any]]
    message_id_header: Mapped[str] = mapped_column(String(300), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    references: Mapped[str | None] = mapped_column(Text)
    original_message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("message.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False)
    # Links in the HTML part (track_clicks) and in the text part (track_text_clicks).
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False)
    track_text_clicks: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # One-click unsubscribe (RFC 8058): List-Unsubscribe headers on every copy, and where
    # to send the recipient after unsubscribing.
    unsubscribe: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    unsubscribe_redirect_url: Mapped[str | None] = mapped_column(Text)
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    # The template version the message was accepted with (no foreign key: every send of
    # a busy template would share-lock its one row, as with workspaces in migration 0003).
    template_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Set when each recipient gets a rendering of their own: subject_template, html and
    # text are then template sources (subject holds the first recipient's rendering),
    # rendered per recipient at delivery with these values. NULL: content as sent.
    variables: Mapped[dict[str, Any] | None]
    # {address (lower case): {name: value}}, over ``variables`` for that recipient.
    recipient_variables: Mapped[dict[str, Any] | None]
    subject_template: Mapped[str | None] = mapped_column(Text)
    # Hidden text at the top of the HTML that inboxes show after the subject.
    preheader: Mapped[str | None] = mapped_column(String(255))
    # False: an HTML-only message goes without a text part generated from its HTML.
    auto_text: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The workspace's domains the copies go out with instead of the From domain's (NULL:
    # the From domain's, and POSTHOUSE_PUBLIC_URL's host): DKIM d=, the envelope
    # sender's domain (a return-path domain, where bounces come back), the links' host.
    signing_domain: Mapped[str | None] = mapped_column(String(253))
    return_path_domain: Mapped[str | None] = mapped_column(String(253))
    tracking_domain: Mapped[str | None] = mapped_column(String(253))
    # No foreign key, like workspace_id: every send through a use case would share-lock it.
    use_case_id: Mapped[uuid.UUID | None]
    tier: Mapped[str | None] = mapped_column(String(16))  # the workspace's, at accept time


class Attachment(IdMixin, Base):
    """File bytes live in the database so one commit covers the message and its files."""

    __tablename__ = "attachment"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    content_id: Mapped[str | None] = mapped_column(String(255))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Sent as a tracking link instead of a MIME part; each fetch is an event.
    track: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"
    HELD = "held"
    SENT = "sent"
    BOUNCED = "bounced"
    REJECTED = "rejected"


PENDING_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)

_USE_CASE = text("use_case_id IS NOT NULL")
_DECIDED = text("state <> 'sent'")
_USE_CASE_DECIDED = text("use_case_id IS NOT NULL AND state <> 'sent'")


class Delivery(IdMixin, CreatedAtMixin, Base):
    """One envelope recipient of a message, and the queue row the worker claims."""

    __tablename__ = "delivery"
    __table_args__ = (
        Index(
            "ix_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('queued', 'deferred')"),
            sqlite_where=text("status IN ('queued', 'deferred')"),
        ),
        Index(
            "ix_delivery_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        # The history's lists (history/repository.py), newest first, one range each.
        Index("ix_delivery_setup", "workspace_id", "from_domain", "created_at", "id"),
        Index(
            "ix_delivery_setup_state",
            "workspace_id",
            "from_domain",
            "state",
            "created_at",
            "id",
            postgresql_where=_DECIDED,
            sqlite_where=_DECIDED,
        ),
        Index(
            "ix_delivery_use_case",
            "use_case_id",
            "created_at",
            "id",
            postgresql_where=_USE_CASE,
            sqlite_where=_USE_CASE,
        ),
        Index(
            "ix_delivery_use_case_recipient",
            "use_case_id",
            "recipient",
            "created_at",
            "id",
            postgresql_where=_USE_CASE,
            sqlite_where=_USE_CASE,
        ),
        Index(
            "ix_delivery_use_case_state",
            "use_case_id",
            "state",
            "created_at",
            "id",
            postgresql_where=_USE_CASE_DECIDED,
            sqlite_where=_USE_CASE_DECIDED,
        ),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"), index=True)
    workspace_id: Mapped[uuid.UUID]
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    kind: Mapped[str] = mapped_column(String(3))  # to, cc, bcc
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_smtp_code: Mapped[int | None] = mapped_column(Integer)
    last_smtp_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    tracking_token: Mapped[str] = mapped_column(String(40), unique=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Why the last attempt failed (delivery/classify.py): hard, soft, block, auth,
    # content, infrastructure or unknown, and a subclass. None once sent.
    failure_class: Mapped[str | None] = mapped_column(String(16))
    failure_subclass: Mapped[str | None] = mapped_column(String(32))
    # The From address's domain: the email's setup (seed 004), also for domains added later.
    from_domain: Mapped[str] = mapped_column(String(255))
    use_case_id: Mapped[uuid.UUID | None]
    # Derived from its events (events.ingest): complained > bounced > rejected >
    # delivered > sent.
    state: Mapped[str] = mapped_column(String(12), default="sent")


class DeliveryAttempt(IdMixin, Base):
    """One SMTP conversation about one delivery, and how it ended."""

    __tablename__ = "delivery_attempt"

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    remote_host: Mapped[str | None] = mapped_column(String(255))


class TrackedLink(Base):
    """A link target recorded when a delivery's copy was built: a click token names the
    delivery and the position, and a hit redirects only to the URL stored here."""

    __tablename__ = "tracked_link"

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)


class Event(IdMixin, Base):
    """Something that happened to a delivery. ``dedupe_key`` makes ingestion idempotent."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_workspace_occurred", "workspace_id", "occurred_at"),
        Index("ix_event_message", "message_id", "occurred_at"),
        Index("ix_event_feed", "workspace_id", "feed_txid", "id"),
    )

    workspace_id: Mapped[uuid.UUID]
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"))
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("delivery.id"), index=True)
    type: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]]
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # PostgreSQL: the inserting transaction's id, set by the column's default (never
    # written by posthouse); the polling feed's order (db/feed.py). NULL on SQLite.
    feed_txid: Mapped[int | None] = mapped_column(BigInteger)


class DestinationBlock(IdMixin, Base):
    """A destination (recipient domain) refusing a workspace's mail from one sending
    domain as a block: since when, and what it said last. Gone once a delivery there
    succeeds again (delivery/blocks.py)."""

    __tablename__ = "destination_block"
    __table_args__ = (UniqueConstraint("workspace_id", "sending_domain", "destination"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"))
    sending_domain: Mapped[str] = mapped_column(String(255))
    destination: Mapped[str] = mapped_column(String(255))
    since: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    subclass: Mapped[str] = mapped_column(String(32))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str] = mapped_column(Text)


# Suppression.scope_id of an entry that applies to all of a workspace's mail.
WORKSPACE_SCOPE = uuid.UUID(int=0)


class Suppression(IdMixin, CreatedAtMixin, Base):
    """An address a workspace does not send to: any of its mail (``scope_id`` is
    WORKSPACE_SCOPE), or only the mail of one use case (``scope_id`` is that use case: an
    unsubscribe from it). Never NULL, so the unique constraint holds on both databases."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("workspace_id", "address", "scope_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"))
    address: Mapped[str] = mapped_column(String(320))
    scope_id: Mapped[uuid.UUID] = mapped_column(Uuid, default=WORKSPACE_SCOPE)
    reason: Mapped[str] = mapped_column(String(20))
    expires_at: Mapped[datetime | None]
    source_event_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_by: Mapped[str | None] = mapped_column(String(200))


class IdempotencyRecord(IdMixin, CreatedAtMixin, Base):
    """A client's idempotency key: claimed while in flight, then holds the response."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("workspace_id", "scope", "key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"))
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    completed_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class MonthlyUsage(Base):
    """Recipients accepted per workspace per calendar month (UTC): the quota counter."""

    __tablename__ = "monthly_usage"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspace.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class RateLimitBucket(Base):
    """A token bucket shared by every api process. Unlogged on PostgreSQL: losing the
    buckets in a crash only forgives some requests, and commits need no WAL flush."""

    __tablename__ = "rate_limit_bucket"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    rate: Mapped[float] = mapped_column(Float)  # tokens per second
    capacity: Mapped[float] = mapped_column(Float)
    # Tokens the last request took: an api process takes several at once from a fast
    # bucket and spends them locally (protections.rate_limit).
    granted: Mapped[float] = mapped_column(Float)
    # Epoch seconds, so one statement can compute the refill on both databases.
    refilled_at: Mapped[float] = mapped_column(Float)


class InboundReport(IdMixin, Base):
    """Mail received on the return-path domain, as received. ``status`` says what became
    of it: attributed (events were recorded on ``delivery_id``), unattributed (kept for an
    operator), or ignored (not a bounce or complaint). ``digest`` spots the same bytes
    arriving twice."""

    __tablename__ = "inbound_report"

    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
