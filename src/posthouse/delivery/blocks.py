"""What a worker does with a failure's class: blocks defer and back off per destination.

A block (delivery/classify.py, class ``block``) says nothing about the recipient: the
sending IP or domain is refused. With ``POSTHOUSE_BLOCK_ACTION=defer`` (the default) the
copy is retried like a 4xx, and the destination (always the recipient's domain, also
through a relay) backs off: its other deliveries are deferred without being sent until
the backoff ends. Backoffs double while the destination keeps blocking, and end at its
first accepted delivery. With ``fail`` a block fails the copy at once (still without
suppressing anyone).

A block is logged once per destination and backoff period, and reported once per
workspace, sending domain and destination and period as a ``Sighting``: the worker stores
it (``destination_block``, shown by ``workspace show`` and ``domain show``) and a later
accepted delivery there clears it. The backoffs live in this worker's memory, like the
MX transport's 421 pauses.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import new_id, utcnow
from posthouse.delivery.classify import BounceClass, Verdict, classify_reply
from posthouse.delivery.repository import BlockRepository
from posthouse.delivery.transports.base import Outcome, SendResult

log = logging.getLogger(__name__)

_MAX_DESTINATIONS = 10_000


@dataclass(frozen=True)
class Sighting:
    """A block to store: who was refused where, since when, and what was said."""

    workspace_id: uuid.UUID
    sending_domain: str
    destination: str
    since: datetime
    verdict: Verdict
    code: int | None
    reply: str


@dataclass(frozen=True)
class Judged:
    send: SendResult
    verdict: Verdict | None  # None: sent
    sighting: Sighting | None = None
    # Set when this accepted delivery ends a block this worker had seen.
    cleared: tuple[uuid.UUID, str, str] | None = None

    def event_data(self, delivery: "Addressed", *, failed: bool) -> dict[str, object]:
        """What the delivery's event says about the failure; ``failed``: the copy will
        not be tried again (a Bounce event)."""
        verdict = self.verdict
        if verdict is None:
            return {}
        data: dict[str, object]
        if not failed:
            data = {"class": str(verdict.klass), "subclass": verdict.subclass}
        elif self.send.outcome == Outcome.BOUNCED:
            data = dict(verdict.event_data())
        else:
            # Retries ran out: a transient failure of this copy, not a verdict on the
            # recipient.
            data = dict(verdict.expired().event_data())
        if verdict.klass == BounceClass.BLOCK:
            data["destination"] = destination_of(delivery.recipient)
        return data


@dataclass
class _Backoff:
    since: datetime
    until: float  # time.monotonic()
    seconds: float
    verdict: Verdict
    code: int | None
    reply: str
    # (workspace, sending domain) pairs already reported in this period.
    reported: set[tuple[uuid.UUID, str]] = field(default_factory=set)


class Addressed(Protocol):
    """What a block is judged on: a delivery's recipient and workspace."""

    @property
    def recipient(self) -> str: ...

    @property
    def workspace_id(self) -> uuid.UUID: ...


def destination_of(recipient: str) -> str:
    return recipient.rsplit("@", 1)[-1].rstrip(".").lower()


class DestinationBlocks:
    def __init__(self, *, action: str, backoff_seconds: float, max_backoff_seconds: float) -> None:
        self.action = action
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max(max_backoff_seconds, backoff_seconds)
        self._backoffs: dict[str, _Backoff] = {}
        # Blocks this worker reported and has not seen cleared yet.
        self._reported: set[tuple[uuid.UUID, str, str]] = set()

    def held_back(self, delivery: Addressed, *, sending_domain: str) -> Judged | None:
        """A deferral without sending, while the recipient's destination backs off."""
        if self.action != "defer":
            return None
        destination = destination_of(delivery.recipient)
        backoff = self._backoffs.get(destination)
        remaining = backoff.until - time.monotonic() if backoff else 0.0
        if backoff is None or remaining <= 0:
            return None
        said = f"{backoff.code} {backoff.reply}" if backoff.code else backoff.reply
        send = SendResult(
            Outcome.DEFERRED,
            None,
            f"4.7.0 held back: {destination} blocks our mail since"
            f" {backoff.since:%Y-%m-%d %H:%M} UTC: {said}"[:2000],
            None,
            retry_after=remaining,
        )
        return Judged(
            send,
            backoff.verdict,
            self._sighting(backoff, destination, delivery.workspace_id, sending_domain),
        )

    def judge(self, result: SendResult, delivery: Addressed, *, sending_domain: str) -> Judged:
        destination = destination_of(delivery.recipient)
        workspace_id = delivery.workspace_id
        if result.outcome == Outcome.SENT:
            self._backoffs.pop(destination, None)
            key = (workspace_id, sending_domain, destination)
            if key in self._reported:
                self._reported.discard(key)
                return Judged(result, None, cleared=key)
            return Judged(result, None)
        if result.outcome == Outcome.REJECTED:
            return Judged(result, None)  # never offered to anyone: nothing to classify
        verdict = classify_reply(result.code, result.reply)
        if verdict.klass != BounceClass.BLOCK:
            return Judged(result, verdict)
        backoff = self._back_off(destination, verdict, result)
        sighting = self._sighting(backoff, destination, workspace_id, sending_domain)
        if self.action == "defer":
            remaining = max(backoff.until - time.monotonic(), result.retry_after or 0.0)
            result = replace(result, outcome=Outcome.DEFERRED, retry_after=remaining)
        return Judged(result, verdict, sighting)

    def _back_off(self, destination: str, verdict: Verdict, result: SendResult) -> _Backoff:
        now = time.monotonic()
        backoff = self._backoffs.get(destination)
        if backoff is not None and backoff.until > now:
            return backoff  # another send of this period: nothing new to say
        if len(self._backoffs) >= _MAX_DESTINATIONS:
            self._backoffs = {d: b for d, b in self._backoffs.items() if b.until > now}
        if backoff is None:
            seconds = self.backoff_seconds
            since = utcnow()
        else:
            # Blocked again right after the last period: longer this time.
            seconds = min(backoff.seconds * 2, self.max_backoff_seconds)
            since = backoff.since
        backoff = _Backoff(since, now + seconds, seconds, verdict, result.code, result.reply)
        self._backoffs[destination] = backoff
        log.warning(
            "%s blocks our mail (%s/%s): %s %s; %s for %.0fs",
            destination,
            verdict.klass,
            verdict.subclass,
            result.code or "",
            result.reply,
            "backing off" if self.action == "defer" else "failing its deliveries, re-checking",
            seconds,
        )
        return backoff

    def _sighting(
        self, backoff: _Backoff, destination: str, workspace_id: uuid.UUID, sending_domain: str
    ) -> Sighting | None:
        pair = (workspace_id, sending_domain)
        if pair in backoff.reported:
            return None
        backoff.reported.add(pair)
        self._reported.add((workspace_id, sending_domain, destination))
        return Sighting(
            workspace_id=workspace_id,
            sending_domain=sending_domain,
            destination=destination,
            since=backoff.since,
            verdict=backoff.verdict,
            code=backoff.code,
            reply=backoff.reply,
        )


async def record(session: AsyncSession, judged: list[Judged]) -> None:
    """Store the blocks first seen in a batch of outcomes, and forget those a delivery
    got past."""
    sightings = [j.sighting for j in judged if j.sighting is not None]
    cleared = [j.cleared for j in judged if j.cleared is not None]
    if not sightings and not cleared:
        return
    repository = BlockRepository(session)
    await repository.clear(cleared)
    now = utcnow()
    await repository.seen(
        [
            {
                "id": new_id(),
                "workspace_id": s.workspace_id,
                "sending_domain": s.sending_domain,
                "destination": s.destination,
                "since": s.since,
                "last_seen_at": now,
                "subclass": s.verdict.subclass,
                "smtp_code": s.code,
                "reply": s.reply[:2000],
            }
            for s in sightings
        ]
    )


async def listed(
    session: AsyncSession, *, workspace_id: uuid.UUID, sending_domain: str | None = None
) -> list[dict[str, Any]]:
    """A workspace's current blocks (or one sending domain's), as ``workspace show`` and
    ``domain show`` print them."""
    rows = await BlockRepository(session).of(workspace_id, sending_domain=sending_domain)
    return [
        {
            "destination": row.destination,
            "sendingDomain": row.sending_domain,
            "since": row.since.isoformat(),
            "lastSeenAt": row.last_seen_at.isoformat(),
            "subclass": row.subclass,
            "reply": f"{row.smtp_code} {row.reply}" if row.smtp_code else row.reply,
        }
        for row in rows
    ]


def describe(block: dict[str, Any]) -> str:
    return f"blocked by {block['destination']} since {block['since']}: {block['reply']}"
