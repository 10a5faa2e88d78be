"""Read bounce and complaint reports: what happened, to whom, and about which message.

Three shapes arrive on the return-path domain:
- RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status),
- RFC 5965 ARF feedback reports (multipart/report; report-type=feedback-report),
- plain-text bounces in the styles of mail systems that do not write RFC 3464
  (qmail, Exim, older Exchange, webmail providers): read by recognising their phrasing.

Parsing is pure: no database, no network. Attribution to a delivery happens in service.py.
"""

import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from enum import StrEnum

from posthouse.delivery.classify import ENHANCED_STATUS


class ReportKind(StrEnum):
    BOUNCE = "bounce"
    DELAY = "delay"
    COMPLAINT = "complaint"
    OTHER = "other"  # a success notice, an auto-reply, anything else


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's line of a report (RFC 3464 section 2.3)."""

    recipient: str | None
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str | None  # the enhanced status code, e.g. 5.1.1
    diagnostic: str | None
    remote_mta: str | None = None
    original_recipient: str | None = None


@dataclass(frozen=True)
class Feedback:
    """An ARF report's machine-readable part (RFC 5965 section 3.1)."""

    feedback_type: str
    user_agent: str | None
    original_mail_from: str | None
    original_rcpt_to: list[str]
    arrival_date: str | None
    source_ip: str | None
    reported_domain: str | None


@dataclass(frozen=True)
class ParsedReport:
    kind: ReportKind
    format: str  # dsn, arf, text
    recipients: list[RecipientStatus] = field(default_factory=list)
    feedback: Feedback | None = None
    reporting_mta: str | None = None
    # From the copy of the original message the report returns, when it does.
    original_message_id: str | None = None
    original_return_path: str | None = None
    original_to: list[str] = field(default_factory=list)

    def failed(self) -> list[RecipientStatus]:
        wanted = "delayed" if self.kind == ReportKind.DELAY else "failed"
        return [r for r in self.recipients if r.action == wanted]


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_RETURN_PATH = re.compile(r"^Return-Path:\s*<?([^>\s]+)>?", re.IGNORECASE | re.MULTILINE)
_TO_HEADER = re.compile(r"^To:\s*(.+(?:\n[ \t].+)*)", re.IGNORECASE | re.MULTILINE)


def _status_in(text: str) -> str | None:
    match = ENHANCED_STATUS.search(text)
    return ".".join(match.groups()) if match else None


def _typed_value(value: str | None) -> str | None:
    """``rfc822; bob@example.com`` -> ``bob@example.com`` (RFC 3464 address-type)."""
    if value is None:
        return None
    value = " ".join(str(value).split())
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _address(value: str | None) -> str | None:
    value = _typed_value(value)
    return value.strip("<>").lower() if value else None


def parse_report(raw: bytes) -> ParsedReport:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            return _parse_dsn(message)
        if report_type == "feedback-report":
            return _parse_arf(message)
    return _parse_text(message)


def _returned_headers(message: Message) -> tuple[str | None, str | None, list[str]]:
    """Message-ID, Return-Path and To of the original message the report returns."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in {"message/rfc822", "message/rfc822-headers"}:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return _headers_of(payload[0])
        if content_type == "text/rfc822-headers":
            parsed = HeaderParser(policy=policy.default).parsestr(_text(part))
            return _headers_of(parsed)
    return None, None, []


def _headers_of(original: Message) -> tuple[str | None, str | None, list[str]]:
    message_id = original.get("Message-ID")
    return_path = original.get("Return-Path")
    to = [a.lower() for a in _ADDRESS.findall(str(original.get("To") or ""))]
    return (
        str(message_id).strip() if message_id else None,
        str(return_path).strip().strip("<>") if return_path else None,
        to,
    )


def _text(part: Message) -> str:
    try:
        if isinstance(part, EmailMessage):
            content = part.get_content()
            if isinstance(content, str):
                return content
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
        return str(part.get_payload())
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def _parse_dsn(message: Message) -> ParsedReport:
    per_message: Message | None = None
    recipients: list[RecipientStatus] = []
    for part in message.walk():
        if part.get_content_type() not in {
            "message/delivery-status",
            "message/global-delivery-status",
        }:
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            blocks = _blocks(_text(part))
        for index, block in enumerate(blocks):
            if index == 0:
                per_message = block
                continue
            action = str(block.get("Action") or "").strip().lower()
            if not action:
                continue
            diagnostic = _typed_value(block.get("Diagnostic-Code"))
            recipients.append(
                RecipientStatus(
                    recipient=_address(block.get("Final-Recipient")),
                    original_recipient=_address(block.get("Original-Recipient")),
                    action=action,
                    status=_status_in(str(block.get("Status") or ""))
                    or _status_in(diagnostic or ""),
                    diagnostic=diagnostic,
                    remote_mta=_typed_value(block.get("Remote-MTA")),
                )
            )
    actions = {r.action for r in recipients}
    if "failed" in actions:
        kind = ReportKind.BOUNCE
    elif "delayed" in actions:
        kind = ReportKind.DELAY
    else:
        kind = ReportKind.OTHER
    message_id, return_path, to = _returned_headers(message)
    return ParsedReport(
        kind=kind,
        format="dsn",
        recipients=recipients,
        reporting_mta=_typed_value(per_message.get("Reporting-MTA")) if per_message else None,
        original_message_id=message_id,
        original_return_path=return_path,
        original_to=to,
    )


def _blocks(text: str) -> list[Message]:
    """Header blocks separated by blank lines, for a delivery-status part left unparsed."""
    parser = HeaderParser(policy=policy.default)
    return [parser.parsestr(chunk) for chunk in re.split(r"\n\s*\n", text.strip()) if chunk]


def _parse_arf(message: Message) -> ParsedReport:
    fields: Message | None = None
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                fields = payload[0]
            else:
                fields = HeaderParser(policy=policy.default).parsestr(_text(part))
            break
    if fields is None:
        return _parse_text(message)
    message_id, return_path, to = _returned_headers(message)
    feedback = Feedback(
        feedback_type=str(fields.get("Feedback-Type") or "other").strip().lower(),
        user_agent=_clean(fields.get("User-Agent")),
        original_mail_from=_address(fields.get("Original-Mail-From")),
        original_rcpt_to=[a for a in map(_address, fields.get_all("Original-Rcpt-To") or []) if a],
        arrival_date=_clean(fields.get("Arrival-Date") or fields.get("Received-Date")),
        source_ip=_clean(fields.get("Source-IP")),
        reported_domain=_clean(fields.get("Reported-Domain")),
    )
    return ParsedReport(
        kind=ReportKind.COMPLAINT,
        format="arf",
        feedback=feedback,
        original_message_id=message_id,
        original_return_path=return_path,
        original_to=to,
    )


def _clean(value: object) -> str | None:
    return " ".join(str(value).split()) if value else None


# Where the human part of a plain-text bounce ends and the returned message begins.
_ORIGINAL_MARKERS = re.compile(
    r"^\s*(-{2,}\s*(this is a copy of the message|below this line is a copy|original message)"
    r"|original message headers:|-{3,}\s*original message\s*-{3,}"
    r"|-{5,}\s*the header of the original message)",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|failed)|returned mail"
    r"|failure notice|mail delivery failed|could not be delivered|non.?delivery",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster", re.IGNORECASE)
_DELAY_PHRASES = re.compile(
    r"delivery (has been |is )?delayed|will (continue to )?(retry|try)|still trying"
    r"|has not yet been delivered|temporar(y|ily) (failure|problem|error)",
    re.IGNORECASE,
)
_PERMANENT_PHRASES = re.compile(
    r"permanent (error|failure)|giving up|given up|couldn't be found|could not be found"
    r"|does not exist|doesn't exist|address not found|user unknown|no such user"
    r"|unknown user|mailbox unavailable|recipient address rejected",
    re.IGNORECASE,
)
_SMTP_REPLY = re.compile(r"\b([45]\d\d)[ -]+([245]\.\d{1,3}\.\d{1,3})?[^\n]*")


def _parse_text(message: Message) -> ParsedReport:
    """Bounces without a delivery-status part: recognise them by their sender, subject
    and phrasing; find the failed address, the reply and the returned message."""
    subject = str(message.get("Subject") or "")
    sender = str(message.get("From") or "")
    body = "\n".join(
        _text(part)
        for part in message.walk()
        if part.get_content_type() == "text/plain" and not _is_inside_rfc822(message, part)
    )
    marker = _ORIGINAL_MARKERS.search(body)
    human, returned = (body[: marker.start()], body[marker.start() :]) if marker else (body, "")
    looks_like_bounce = bool(
        _BOUNCE_SUBJECT.search(subject)
        or (
            _BOUNCE_SENDER.search(sender)
            and (ENHANCED_STATUS.search(human) or _PERMANENT_PHRASES.search(human))
        )
    )
    message_id, return_path, to = _returned_headers(message)
    if message_id is None:
        found = _MESSAGE_ID.search(returned)
        message_id = found.group(1) if found else None
    if return_path is None:
        found = _RETURN_PATH.search(returned)
        return_path = found.group(1) if found else None
    if not to and (found := _TO_HEADER.search(returned)):
        to = [a.lower() for a in _ADDRESS.findall(found.group(1))]
    if message_id is None:
        # Gmail-style bounces thread under the original message instead of quoting it.
        references = str(message.get("In-Reply-To") or message.get("References") or "").split()
        message_id = references[-1] if references else None
    if not looks_like_bounce:
        return ParsedReport(
            kind=ReportKind.OTHER,
            format="text",
            original_message_id=message_id,
            original_return_path=return_path,
            original_to=to,
        )
    failed = [a.lower() for a in _ADDRESS.findall(str(message.get("X-Failed-Recipients") or ""))]
    if not failed:
        failed = _failed_addresses(human, exclude={sender.lower()})
    reply = _SMTP_REPLY.search(human)
    diagnostic = " ".join(reply.group(0).split()) if reply else None
    status = _status_in(human)
    if status is None and reply:
        status = f"{reply.group(1)[0]}.0.0"
    delayed = (
        status is not None
        and status.startswith("4")
        or (status is None and _DELAY_PHRASES.search(human) is not None)
    )
    if status is None and _PERMANENT_PHRASES.search(human):
        status = "5.0.0"
    action = "delayed" if delayed else "failed"
    recipients = [
        RecipientStatus(recipient=address, action=action, status=status, diagnostic=diagnostic)
        for address in (failed or [None])
    ]
    return ParsedReport(
        kind=ReportKind.DELAY if delayed else ReportKind.BOUNCE,
        format="text",
        recipients=recipients,
        original_message_id=message_id,
        original_return_path=return_path,
        original_to=to,
    )


def _is_inside_rfc822(message: Message, target: Message) -> bool:
    for part in message.walk():
        if part.get_content_type() == "message/rfc822" and any(
            inner is target for inner in part.walk()
        ):
            return True
    return False


def _failed_addresses(human: str, *, exclude: set[str]) -> list[str]:
    """Addresses the human-readable part names, in order, once each."""
    seen: list[str] = []
    for address in _ADDRESS.findall(human):
        address = address.lower().rstrip(".")
        if (
            address not in seen
            and not _BOUNCE_SENDER.match(address)
            and not any(address in e for e in exclude)
        ):
            seen.append(address)
    return seen
