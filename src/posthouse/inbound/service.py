"""Turn a received bounce or complaint into events on the delivery it is about.

Invariants:
- Every report received is kept in ``inbound_report``: attributed ones with the delivery
  they named, the rest for an operator. Nothing is dropped.
- Attribution trusts a VERP address only when its HMAC is valid; a VERP-shaped address
  with a wrong mac makes the report unattributed, whatever else it claims, so a forged
  bounce cannot touch another message. Without VERP, the returned message's Message-ID
  and the report's recipient must both match.
- Events are idempotent: their dedupe key is built from what the report says (delivery,
  kind, status code or feedback type), so the same report received twice, or re-sent
  with a new Date, is one event.
"""

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Delivery, InboundReport
from posthouse.delivery import screening
from posthouse.delivery.classify import Verdict, classify_dsn
from posthouse.delivery.envelope import looks_like_verp, parse_verp
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.inbound.reports import (
    ParsedReport,
    RecipientStatus,
    ReportKind,
    parse_report,
)
from posthouse.inbound.repository import InboundRepository
from posthouse.tracking import service as tracking_service
from posthouse.tracking.repository import TrackedDelivery
from posthouse.tracking.tokens import TokenSigner

log = logging.getLogger(__name__)

# Feedback types that are a recipient's complaint (RFC 5965, RFC 6591): not-spam and
# auth-failure reports are kept, but are no complaint.
_COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})


@dataclass(frozen=True)
class InboundOutcome:
    report_id: str
    status: str  # attributed, unattributed, ignored, duplicate
    kind: str
    detail: str
    events: int = 0


async def accepts_recipient(session: AsyncSession, *, address: str) -> bool:
    """Mail is taken only for the return-path domains of known sending domains."""
    domain = address.rsplit("@", 1)[-1].strip(">").lower()
    return await InboundRepository(session).is_return_path_domain(domain)


async def process_report(
    session: AsyncSession,
    *,
    mail_from: str,
    rcpt_tos: list[str],
    raw: bytes,
    secret: str,
    signer: TokenSigner | None = None,
) -> InboundOutcome:
    """Parse, attribute and record one received report, in the caller's transaction.
    Mail to a List-Unsubscribe address (``signer`` verifies its token) unsubscribes."""
    inbound = InboundRepository(session)
    unsubscribes = [a for a in rcpt_tos if tracking_service.is_unsubscribe_address(a)]
    digest = hashlib.sha256(raw).hexdigest()
    if signer is not None and unsubscribes:
        # Not checked for duplicate bytes: clients send the same short body to every
        # address, and unsubscribing again changes nothing anyway.
        return await _unsubscribe(
            session,
            signer=signer,
            report=InboundReport(
                id=new_id(),
                received_at=utcnow(),
                mail_from=mail_from[:320],
                rcpt_to=", ".join(rcpt_tos)[:320],
                kind="unsubscribe",
                digest=digest,
                raw=raw,
            ),
            addresses=unsubscribes,
        )
    previous = await inbound.report_by_digest(digest)
    if previous is not None:
        return InboundOutcome(str(previous.id), "duplicate", previous.kind, "received before")
    report_id = new_id()
    try:
        parsed = parse_report(raw)
    except Exception as error:  # a report we cannot read is kept, never refused
        log.warning("unreadable inbound report: %r", error)
        parsed = None
    delivery: Delivery | None = None
    detail = "unreadable"
    if parsed is not None:
        delivery, detail = await _attribute(inbound, parsed, rcpt_tos=rcpt_tos, secret=secret)
    kind = parsed.kind if parsed else ReportKind.OTHER
    events: list[events_service.NewEvent] = []
    verdict: Verdict | None = None
    if parsed is not None and delivery is not None:
        events, verdict = _events(
            parsed, delivery, report_id=str(report_id), occurred_at=_date(raw)
        )
        if not events:
            detail = f"{detail}; nothing to record ({kind})"
    if events:
        status = "attributed"
    elif delivery is None and kind != ReportKind.OTHER:
        status = "unattributed"
    else:
        status = "ignored"
    await inbound.add_report(
        InboundReport(
            id=report_id,
            received_at=utcnow(),
            mail_from=mail_from[:320],
            rcpt_to=", ".join(rcpt_tos)[:320],
            kind=str(kind),
            status=status,
            detail=detail,
            delivery_id=delivery.id if delivery is not None and events else None,
            digest=digest,
            raw=raw,
        )
    )
    if events:
        await events_service.ingest(session, events)
        if any(e.type == EventType.BOUNCE for e in events) and delivery is not None:
            assert verdict is not None
            await screening.mark_bounced(session, delivery_id=delivery.id, verdict=verdict)
    return InboundOutcome(str(report_id), status, str(kind), detail, len(events))


async def _unsubscribe(
    session: AsyncSession, *, signer: TokenSigner, report: InboundReport, addresses: list[str]
) -> InboundOutcome:
    """Mail to List-Unsubscribe's mailto address: kept like any report, and the recipient
    of the delivery its token names is unsubscribed (a forged token changes nothing)."""
    done: TrackedDelivery | None = None
    for address in addresses:
        done = await tracking_service.unsubscribe_by_mail(
            session, signer=signer, address=address, sender=report.mail_from
        )
        if done is not None:
            break
    report.status = "attributed" if done is not None else "unattributed"
    report.delivery_id = done.id if done is not None else None
    report.detail = (
        f"unsubscribed {done.recipient}" if done is not None else "forged unsubscribe address"
    )
    await InboundRepository(session).add_report(report)
    return InboundOutcome(
        str(report.id), report.status, "unsubscribe", report.detail, int(done is not None)
    )


async def _attribute(
    inbound: InboundRepository, parsed: ParsedReport, *, rcpt_tos: list[str], secret: str
) -> tuple[Delivery | None, str]:
    """The delivery a report is about, and how we know (or why we do not)."""
    candidates = [*rcpt_tos, parsed.original_return_path]
    if parsed.feedback is not None:
        candidates.append(parsed.feedback.original_mail_from)
    for address in filter(None, candidates):
        if not looks_like_verp(address):
            continue
        delivery_id = parse_verp(address, secret=secret)
        if delivery_id is None:
            return None, f"forged or damaged VERP address {address}"
        delivery = await inbound.delivery(delivery_id)
        if delivery is None:
            return None, f"VERP address {address} names no delivery"
        return delivery, f"VERP {address}"
    if not parsed.original_message_id:
        return None, "no VERP address and no original Message-ID"
    deliveries = await inbound.deliveries_of(parsed.original_message_id)
    if not deliveries:
        return None, f"no message with Message-ID {parsed.original_message_id}"
    named = {r.recipient for r in parsed.recipients} | {
        r.original_recipient for r in parsed.recipients
    }
    if parsed.feedback is not None:
        named |= set(parsed.feedback.original_rcpt_to)
    named.discard(None)
    for delivery in deliveries:
        if delivery.recipient.lower() in named:
            return delivery, f"Message-ID {parsed.original_message_id} and recipient"
    if parsed.kind == ReportKind.COMPLAINT and not named and len(deliveries) == 1:
        # Feedback loops redact the recipient; a message with one recipient is still clear.
        return deliveries[0], f"Message-ID {parsed.original_message_id}, its only recipient"
    return None, f"Message-ID {parsed.original_message_id} matches, but no recipient does"


def _events(
    parsed: ParsedReport, delivery: Delivery, *, report_id: str, occurred_at: datetime
) -> tuple[list[events_service.NewEvent], Verdict | None]:
    """The events a report records, and the class of the failure it reports."""
    common = {
        "recipient": delivery.recipient,
        "source": "inbound",
        "format": parsed.format,
        "inbound_report_id": report_id,
    }
    if parsed.kind == ReportKind.COMPLAINT and parsed.feedback is not None:
        feedback = parsed.feedback
        if feedback.feedback_type not in _COMPLAINT_TYPES:
            return [], None
        data = {
            **common,
            "feedback_type": feedback.feedback_type,
            "user_agent": feedback.user_agent,
            "arrival_date": feedback.arrival_date,
            "source_ip": feedback.source_ip,
        }
        key = f"inbound:{delivery.id}:complaint:{feedback.feedback_type}"
        return [_event(delivery, EventType.COMPLAINT, occurred_at, key, data)], None
    if parsed.kind not in {ReportKind.BOUNCE, ReportKind.DELAY}:
        return [], None
    line = _line_for(parsed.failed(), delivery.recipient)
    if line is None:
        return [], None
    verdict = classify_dsn(line.status, line.diagnostic)
    data = {
        **common,
        "status": line.status,
        "smtp_reply": line.diagnostic,
        "action": line.action,
        "reporting_mta": parsed.reporting_mta,
        "remote_mta": line.remote_mta,
    }
    if parsed.kind == ReportKind.DELAY:
        data |= {"class": str(verdict.klass), "subclass": verdict.subclass}
        key = f"inbound:{delivery.id}:delay:{_short_hash(line.status, line.diagnostic)}"
        return [_event(delivery, EventType.DELIVERY_DELAY, occurred_at, key, data)], verdict
    data |= verdict.event_data()
    key = f"inbound:{delivery.id}:bounce:{line.status or '-'}:{verdict.bounce_type}"
    return [_event(delivery, EventType.BOUNCE, occurred_at, key, data)], verdict


def _line_for(lines: list[RecipientStatus], recipient: str) -> RecipientStatus | None:
    recipient = recipient.lower()
    for line in lines:
        if recipient in {line.recipient, line.original_recipient}:
            return line
    # VERP already named the delivery; a report that names no recipient, or names it as
    # rewritten by a forwarder, is still about it.
    return lines[0] if lines else None


def _event(
    delivery: Delivery,
    type: EventType,
    occurred_at: datetime,
    key: str,
    data: Mapping[str, object],
) -> events_service.NewEvent:
    return events_service.NewEvent(
        workspace_id=delivery.workspace_id,
        message_id=delivery.message_id,
        delivery_id=delivery.id,
        type=type,
        occurred_at=occurred_at,
        dedupe_key=key[:200],
        data=dict(data),
    )


def _short_hash(*parts: str | None) -> str:
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


def _date(raw: bytes) -> datetime:
    """When the report says it was written; now when it does not say, or lies."""
    now = utcnow()
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.decode("latin-1").splitlines():
        if line.lower().startswith("date:"):
            try:
                when = parsedate_to_datetime(line[5:].strip())
            except (TypeError, ValueError):
                return now
            if when.tzinfo is None or when > now:
                return now
            return when
    return now
