"""The history's rules: scopes, states, paging tokens, and what an email's events add up
to. Doors call these and only translate; the SQL is in repository.py."""

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.addresses import normalize_email
from posthouse.db import feed
from posthouse.db.dialect import dialect_of
from posthouse.db.models import Attachment, Delivery, Event, Message
from posthouse.errors import ContinuationTokenInvalid, EmailNotFound, ValidationFailed
from posthouse.events.types import STATES, EventType
from posthouse.history.downloads import Downloads
from posthouse.history.paging import Tokens
from posthouse.history.repository import (
    EmailQuery,
    EmailRow,
    EventQuery,
    FeedEvent,
    HistoryRepository,
    MessageQuery,
)

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
EVENT_TYPES = tuple(str(t) for t in EventType)


@dataclass(frozen=True)
class Page:
    limit: int = DEFAULT_LIMIT
    token: str | None = None


@dataclass
class Activity:
    """What one recipient's events add up to (seed 004's detail fields)."""

    delivered_at: datetime | None = None
    bounced_at: datetime | None = None
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    complained_at: datetime | None = None
    rejected_at: datetime | None = None
    delivery_delay_at: datetime | None = None
    first_open_at: datetime | None = None
    last_open_at: datetime | None = None
    open_count: int = 0
    first_click_at: datetime | None = None
    last_click_at: datetime | None = None
    click_count: int = 0
    last_received_at: datetime | None = None


@dataclass(frozen=True)
class EmailSummary:
    id: uuid.UUID
    use_case_id: uuid.UUID | None
    setup_id: uuid.UUID | None
    from_address: str
    to_address: str
    subject: str
    state: str
    sent_at: datetime
    has_attachment: bool
    open_count: int
    click_count: int


@dataclass(frozen=True)
class EmailDetail:
    summary: EmailSummary
    message_id: str
    email_type: str
    tier: str | None
    attachment_filenames: list[str]
    activity: Activity
    updated_at: datetime


@dataclass(frozen=True)
class EmailPage:
    emails: list[EmailSummary]
    has_more: bool
    token: str | None


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    has_more: bool
    token: str | None


@dataclass(frozen=True)
class RecipientHistory:
    delivery: Delivery
    activity: Activity
    events: list[Event]


@dataclass(frozen=True)
class MessagePage:
    messages: list[tuple[Message, list[Delivery]]]
    has_more: bool
    token: str | None


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class Scope:
    """Seed 004's list scope: a use case and/or an email setup (at least one)."""

    workspace_id: uuid.UUID
    use_case_id: uuid.UUID | None = None
    setup_id: uuid.UUID | None = None


def activity_of(events: list[Event]) -> Activity:
    """Events in the order they happened -> first/last times and counts. Bounce type and
    subtype come from the first Bounce's data (the classifier's vocabulary); opens and
    clicks caused by machines (``data.machine``) are not counted."""
    activity = Activity()
    for event in events:
        at = event.occurred_at
        if activity.last_received_at is None or event.received_at > activity.last_received_at:
            activity.last_received_at = event.received_at
        match event.type:
            case EventType.DELIVERY:
                activity.delivered_at = activity.delivered_at or at
            case EventType.BOUNCE if activity.bounced_at is None:
                activity.bounced_at = at
                activity.bounce_type = _text(event.data.get("bounce_type"))
                activity.bounce_subtype = _text(event.data.get("bounce_subtype"))
            case EventType.COMPLAINT:
                activity.complained_at = activity.complained_at or at
            case EventType.REJECT:
                activity.rejected_at = activity.rejected_at or at
            case EventType.DELIVERY_DELAY:
                activity.delivery_delay_at = at
            case EventType.OPEN if not event.data.get("machine"):
                activity.first_open_at = activity.first_open_at or at
                activity.last_open_at = at
                activity.open_count += 1
            case EventType.CLICK if not event.data.get("machine"):
                activity.first_click_at = activity.first_click_at or at
                activity.last_click_at = at
                activity.click_count += 1
    return activity


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def _states(states: list[str]) -> tuple[str, ...]:
    for state in states:
        if state not in STATES:
            raise ValidationFailed(f"state must be one of {', '.join(STATES)}", field="state")
    return tuple(sorted(set(states)))


def _addresses(addresses: list[str], field: str) -> tuple[str, ...]:
    normal = set()
    for address in addresses:
        try:
            normal.add(normalize_email(address))
        except ValidationFailed:
            raise ValidationFailed(f"{field}: invalid email address", field=field) from None
    return tuple(sorted(normal))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _query_key(kind: str, **filters: Any) -> str:
    """The canonical text of a query's filters, which a continuation token is bound to."""
    parts = [kind]
    for name in sorted(filters):
        value = filters[name]
        if isinstance(value, tuple | list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        parts.append(f"{name}={'' if value is None else value}")
    return "\x00".join(parts)


def _keyset(tokens: Tokens, key: str, token: str | None) -> tuple[datetime, uuid.UUID] | None:
    if token is None:
        return None
    position = tokens.decode(key, token)
    try:
        when, ident = position
        return datetime.fromisoformat(when), uuid.UUID(ident)
    except (TypeError, ValueError):
        raise ContinuationTokenInvalid("invalid continuation_token") from None


def _next(tokens: Tokens, key: str, when: datetime, ident: uuid.UUID) -> str:
    return tokens.encode(key, [when.isoformat(), str(ident)])


async def _from_domain(repository: HistoryRepository, scope: Scope) -> tuple[bool, str | None]:
    """(whether the scope can match anything, the setup's domain name)."""
    if scope.use_case_id is None and scope.setup_id is None:
        raise ValidationFailed("use_case_id or setup_id is required", field="use_case_id")
    if scope.setup_id is None:
        return True, None
    name = await repository.setup_name(scope.workspace_id, scope.setup_id)
    return name is not None, name


async def list_emails(
    session: AsyncSession,
    *,
    scope: Scope,
    recipients: list[str],
    states: list[str],
    sent_after: datetime | None,
    sent_before: datetime | None,
    page: Page,
    tokens: Tokens,
) -> EmailPage:
    """Seed 004's list: newest first, keyset-paged, any of the recipients and states."""
    limit = _limit(page.limit)
    query = EmailQuery(
        workspace_id=scope.workspace_id,
        use_case_id=scope.use_case_id,
        recipients=_addresses(recipients, "to_address"),
        states=_states(states),
        sent_after=_utc(sent_after),
        sent_before=_utc(sent_before),
    )
    key = _query_key(
        "emails",
        workspace=scope.workspace_id,
        use_case=scope.use_case_id,
        setup=scope.setup_id,
        to=query.recipients,
        state=query.states,
        after=query.sent_after,
        before=query.sent_before,
    )
    before = _keyset(tokens, key, page.token)
    repository = HistoryRepository(session)
    exists, domain = await _from_domain(repository, scope)
    if not exists:
        return EmailPage([], False, None)
    query = replace(query, from_domain=domain)
    rows = await repository.emails(query, before=before, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    token = _next(tokens, key, rows[-1].sent_at, rows[-1].id) if has_more else None
    return EmailPage([_summary(row) for row in rows], has_more, token)


def _summary(row: EmailRow) -> EmailSummary:
    return EmailSummary(
        id=row.id,
        use_case_id=row.use_case_id,
        setup_id=row.setup_id,
        from_address=row.from_email,
        to_address=row.recipient,
        subject=row.subject,
        state=row.state,
        sent_at=row.sent_at,
        has_attachment=row.attachment_count > 0,
        open_count=row.open_count,
        click_count=row.click_count,
    )


async def _own_email(
    repository: HistoryRepository, workspace_id: uuid.UUID, email_id: uuid.UUID
) -> EmailRow:
    row = await repository.email(workspace_id, email_id)
    if row is None:
        raise EmailNotFound("email not found")
    return row


async def get_email(
    session: AsyncSession, *, workspace_id: uuid.UUID, email_id: uuid.UUID
) -> EmailDetail:
    repository = HistoryRepository(session)
    found = await repository.detail(workspace_id, email_id)
    if found is None:
        raise EmailNotFound("email not found")
    delivery, message, setup_id, use_case_type = found
    activity = activity_of(await repository.events_of([delivery.id]))
    summary = EmailSummary(
        id=delivery.id,
        use_case_id=delivery.use_case_id,
        setup_id=setup_id,
        from_address=message.from_email,
        to_address=delivery.recipient,
        subject=message.subject,
        state=delivery.state,
        sent_at=delivery.created_at,
        has_attachment=message.attachment_count > 0,
        open_count=activity.open_count,
        click_count=activity.click_count,
    )
    updated = max(filter(None, [delivery.updated_at, activity.last_received_at]))
    return EmailDetail(
        summary=summary,
        message_id=message.message_id_header,
        email_type=use_case_type or "transactional",
        tier=message.tier,
        attachment_filenames=await repository.attachment_names(message.id)
        if message.attachment_count
        else [],
        activity=activity,
        updated_at=updated,
    )


async def email_body(session: AsyncSession, *, workspace_id: uuid.UUID, email_id: uuid.UUID) -> str:
    """The HTML as sent (empty for a text-only email)."""
    repository = HistoryRepository(session)
    row = await _own_email(repository, workspace_id, email_id)
    return (await repository.message(row.message_id)).html or ""


async def attachment_link(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    email_id: uuid.UUID,
    filename: str,
    downloads: Downloads,
) -> str:
    """A short-lived signed token for one of the email's attachments, by send-time name."""
    repository = HistoryRepository(session)
    row = await _own_email(repository, workspace_id, email_id)
    attachment_id = await repository.attachment_id(row.message_id, filename)
    if attachment_id is None:
        raise EmailNotFound("attachment not found")
    return downloads.sign(attachment_id)


async def download(session: AsyncSession, *, token: str, downloads: Downloads) -> Attachment:
    """The attachment a signed token names; expired or tampered tokens find nothing."""
    attachment_id = downloads.verify(token)
    attachment = (
        await HistoryRepository(session).attachment(attachment_id) if attachment_id else None
    )
    if attachment is None:
        raise EmailNotFound("download not found")
    return attachment


async def list_events(
    session: AsyncSession,
    *,
    scope: Scope,
    email_ids: list[uuid.UUID],
    types: list[str],
    after: datetime | None,
    before: datetime | None,
    page: Page,
    tokens: Tokens,
) -> EventPage:
    """Seed 004's event list: oldest first, keyset-paged."""
    limit = _limit(page.limit)
    for kind in types:
        if kind not in EVENT_TYPES:
            raise ValidationFailed(
                f"event_type must be one of {', '.join(EVENT_TYPES)}", field="event_type"
            )
    query = EventQuery(
        workspace_id=scope.workspace_id,
        use_case_id=scope.use_case_id,
        delivery_ids=tuple(sorted(set(email_ids))),
        types=tuple(sorted(set(types))),
        after=_utc(after),
        before=_utc(before),
    )
    key = _query_key(
        "events",
        workspace=scope.workspace_id,
        use_case=scope.use_case_id,
        setup=scope.setup_id,
        email=query.delivery_ids,
        type=query.types,
        after=query.after,
        before=query.before,
    )
    position = _keyset(tokens, key, page.token)
    repository = HistoryRepository(session)
    exists, domain = await _from_domain(repository, scope)
    if not exists:
        return EventPage([], False, None)
    query = replace(query, from_domain=domain)
    events = await repository.events(query, after=position, limit=limit + 1)
    has_more = len(events) > limit
    events = events[:limit]
    token = _next(tokens, key, events[-1].occurred_at, events[-1].id) if has_more else None
    return EventPage(events, has_more, token)


# The native history: one sender's messages, their recipients, and the polling feed.


async def list_messages(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    sender_id: uuid.UUID,
    recipients: list[str],
    states: list[str],
    sent_after: datetime | None,
    sent_before: datetime | None,
    subject_contains: str | None,
    page: Page,
    tokens: Tokens,
) -> MessagePage:
    limit = _limit(page.limit)
    query = MessageQuery(
        workspace_id=workspace_id,
        sender_id=sender_id,
        recipients=_addresses(recipients, "recipient"),
        states=_states(states),
        sent_after=_utc(sent_after),
        sent_before=_utc(sent_before),
        subject_contains=subject_contains or None,
    )
    key = _query_key("messages", **query.__dict__)
    before = _keyset(tokens, key, page.token)
    repository = HistoryRepository(session)
    messages = await repository.messages(query, before=before, limit=limit + 1)
    has_more = len(messages) > limit
    messages = messages[:limit]
    by_message: dict[uuid.UUID, list[Delivery]] = {m.id: [] for m in messages}
    for delivery in await repository.deliveries(list(by_message)):
        by_message[delivery.message_id].append(delivery)
    token = _next(tokens, key, messages[-1].created_at, messages[-1].id) if has_more else None
    return MessagePage([(m, by_message[m.id]) for m in messages], has_more, token)


async def recipients_history(
    session: AsyncSession, *, deliveries: list[Delivery]
) -> list[RecipientHistory]:
    """Per delivery: what its events add up to, and the events in order."""
    events = await HistoryRepository(session).events_of([d.id for d in deliveries])
    by_delivery: dict[uuid.UUID, list[Event]] = {d.id: [] for d in deliveries}
    for event in events:
        if event.delivery_id in by_delivery:
            by_delivery[event.delivery_id].append(event)
    return [
        RecipientHistory(d, activity_of(by_delivery[d.id]), by_delivery[d.id]) for d in deliveries
    ]


async def poll_feed(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    sender_id: uuid.UUID,
    cursor: str | None,
    limit: int,
    tokens: Tokens,
) -> FeedPage:
    """The sender's events after ``cursor``, each exactly once over successive polls
    (db/feed.py). The returned cursor continues from the last event handed out (the one
    given back when there was none)."""
    limit = _limit(limit)
    dialect = dialect_of(session)
    key = _query_key("feed", workspace=workspace_id, sender=sender_id)
    after = None
    if cursor:
        try:
            after = feed.parse(dialect, tokens.decode(key, cursor))
        except (TypeError, ValueError):
            raise ContinuationTokenInvalid("invalid cursor") from None
    events = await HistoryRepository(session).feed(
        workspace_id=workspace_id, sender_id=sender_id, after=after, limit=limit + 1
    )
    has_more = len(events) > limit
    events = events[:limit]
    next_cursor = tokens.encode(key, events[-1].position) if events else cursor
    return FeedPage(events, next_cursor, has_more)


# Seed 003's message information: every copy of the messages a client tagged with its own
# id (X-Unique-Id), with their opens and clicks one by one.


# Far beyond any real list, and small enough that the offset fits every database's integer.
MAX_TAGGED_PAGE = 100_000


@dataclass(frozen=True)
class Hit:
    """One open or click as a person made it (machines' hits are left out, as in counts)."""

    ip: str | None
    user_agent: str | None
    at: datetime


@dataclass(frozen=True)
class TaggedCopy:
    delivery: Delivery
    message: Message
    attachment_bytes: int
    opens: list[Hit]
    clicks: list[Hit]

    @property
    def content_bytes(self) -> int:
        """The message's content as accepted: HTML, text and files, before MIME encoding."""
        message = self.message
        bodies = (message.html or "", message.text or "")
        return sum(len(b.encode("utf-8", "surrogatepass")) for b in bodies) + self.attachment_bytes


def _hits(events: list[Event], kind: EventType) -> list[Hit]:
    return [
        Hit(_text(event.data.get("ip")), _text(event.data.get("user_agent")), event.occurred_at)
        for event in events
        if event.type == kind and not event.data.get("machine")
    ]


async def tagged_copies(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    external_id: str,
    page: int,
    per_page: int,
) -> list[TaggedCopy]:
    """Page ``page`` (from 0) of the copies of the workspace's messages with this
    external id, oldest message first; another workspace's look like none at all."""
    if not 0 <= page <= MAX_TAGGED_PAGE:
        raise ValidationFailed(f"page must be 0 to {MAX_TAGGED_PAGE}", field="page")
    repository = HistoryRepository(session)
    rows = await repository.copies_by_external_id(
        workspace_id, external_id, offset=page * per_page, limit=per_page
    )
    sizes = await repository.attachment_bytes(list({message.id for _, message in rows}))
    by_delivery: dict[uuid.UUID, list[Event]] = {delivery.id: [] for delivery, _ in rows}
    for event in await repository.events_of(list(by_delivery)):
        if event.delivery_id in by_delivery:
            by_delivery[event.delivery_id].append(event)
    return [
        TaggedCopy(
            delivery,
            message,
            sizes.get(message.id, 0),
            _hits(by_delivery[delivery.id], EventType.OPEN),
            _hits(by_delivery[delivery.id], EventType.CLICK),
        )
        for delivery, message in rows
    ]
