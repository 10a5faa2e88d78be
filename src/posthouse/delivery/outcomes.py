"""Turn whatever a send raised into an Outcome, in one place."""

import asyncio

import aiosmtplib

from posthouse.delivery.transports.base import Outcome, SendResult

# 5xx replies that mean "this relay will not take mail from us", not "no such recipient":
# bouncing every queued message because a password expired would be wrong.
_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})


def outcome_for_code(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    if code >= 500 and code not in _CONFIGURATION_CODES:
        return Outcome.BOUNCED
    return Outcome.DEFERRED


def classify(error: BaseException, *, remote_host: str | None = None) -> SendResult:
    match error:
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
