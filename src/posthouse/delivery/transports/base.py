"""What a transport is: something that hands one message to one recipient."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    SENT = "sent"  # the next hop accepted it (250)
    DEFERRED = "deferred"  # try again later (4xx, connection trouble, timeouts)
    BOUNCED = "bounced"  # permanent failure (5xx, no such domain)
    # Never sent: this copy could not be made (its template did not render for this
    # recipient's values). Not the address's fault: no bounce, no suppression.
    REJECTED = "rejected"


@dataclass(frozen=True)
class OutgoingMail:
    envelope_from: str
    recipient: str
    data: bytes
    # True when every line of ``data`` already ends in CRLF, as build_message guarantees
    # (signed or not): SMTP transports then skip re-checking the line endings.
    crlf: bool = False


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    code: int | None
    reply: str
    remote_host: str | None = None
    # Seconds before the next attempt is worth making (a destination asked us to slow down).
    retry_after: float | None = None


class Transport(Protocol):
    async def send(self, mail: OutgoingMail) -> SendResult: ...

    async def close(self) -> None: ...
