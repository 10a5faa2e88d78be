"""Turn whatever a send raised into an Outcome, in one place."""

import asyncio
import re

import aiosmtplib
import dns.exception
import dns.resolver

from posthouse.delivery.transports.base import Outcome, SendResult
from posthouse.errors import TemplateRenderFailed

# How the worker's reply for a delivery whose retries ran out starts (reclassify reads it).
GAVE_UP = "gave up after "

# 5xx replies that mean "this relay will not take mail from us", not "no such recipient":
# bouncing every queued message because a password expired would be wrong.
_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})
# RFC 3463 4.7.x: "security or policy status", which receivers use for rate limiting.
_POLICY_DEFERRAL = re.compile(r"^\s*4\.7\.\d{1,3}\b")


class NullMx(Exception):
    """The domain publishes a null MX (RFC 7505): it accepts no mail at all."""


class ReplyLost(aiosmtplib.SMTPException):
    """The whole message was written, final dot included, and the connection dropped or
    timed out before the server answered: the server may have queued it (RFC 1047).
    Never sent again at once: the attempt is recorded and retried on the schedule, with
    the same Message-ID."""


class TlsUnavailable(Exception):
    """TLS is required by policy, and the receiving host did not offer or complete it."""


def is_throttle(result: SendResult) -> bool:
    """A receiver asking us to slow down: 421, or a 4.7.x enhanced status."""
    return result.code == 421 or (
        result.code is not None
        and 400 <= result.code < 500
        and _POLICY_DEFERRAL.match(result.reply) is not None
    )


def outcome_for_code(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    if code >= 500 and code not in _CONFIGURATION_CODES:
        return Outcome.BOUNCED
    return Outcome.DEFERRED


def classify(error: BaseException, *, remote_host: str | None = None) -> SendResult:
    match error:
        case TemplateRenderFailed():
            # Rendering is deterministic: trying again would fail the same way.
            return SendResult(Outcome.REJECTED, None, f"5.6.0 template: {error.detail}", None)
        case NullMx():
            return SendResult(Outcome.BOUNCED, 556, f"5.1.10 {error}", remote_host)
        case dns.resolver.NXDOMAIN():
            return SendResult(Outcome.BOUNCED, None, f"5.1.2 {error}", remote_host)
        case ReplyLost():
            return SendResult(
                Outcome.DEFERRED,
                None,
                f"4.4.2 no reply after the message was sent, it may have been delivered: {error}",
                remote_host,
            )
        case TlsUnavailable():
            return SendResult(Outcome.DEFERRED, None, f"4.7.10 {error}", remote_host)
        case dns.exception.DNSException():
            return SendResult(Outcome.DEFERRED, None, f"4.4.3 DNS: {error}", remote_host)
        case aiosmtplib.SMTPRecipientsRefused(recipients=[first, *_]):
            return SendResult(outcome_for_code(first.code), first.code, first.message, remote_host)
        case aiosmtplib.SMTPResponseException(code=code, message=message):
            return SendResult(outcome_for_code(code), code, message, remote_host)
        case aiosmtplib.SMTPTimeoutError() | asyncio.TimeoutError() | TimeoutError():
            return SendResult(Outcome.DEFERRED, None, f"timed out: {error}", remote_host)
        case aiosmtplib.SMTPException() | OSError():
            return SendResult(
                Outcome.DEFERRED, None, f"{type(error).__name__}: {error}", remote_host
            )
    return SendResult(
        Outcome.DEFERRED, None, f"unexpected {type(error).__name__}: {error}", remote_host
    )
