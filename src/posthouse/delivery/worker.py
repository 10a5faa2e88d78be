"""The delivery worker: claim due deliveries, send them with no transaction open, record.

Invariants:
- A claim is a short transaction that sets a lease; the SMTP conversation happens after
  it committed; the outcome is written in another short transaction.
- A running worker renews the leases of the deliveries it holds, however long they wait
  for a send slot or a slow server; a worker that dies mid-send stops renewing, its
  leases expire, and the delivery is claimed and sent again (at-least-once, with the
  same Message-ID).
- Outcomes are buffered in memory only until the recorder writes them; a crash loses the
  record, never the delivery.
- A stop (SIGTERM) is bounded (``worker_shutdown_seconds``): deliveries claimed but not
  yet started are given back at once, sends on the wire get until shortly before the
  bound, and one still unanswered then is recorded as cut off and retried on schedule.
"""

import asyncio
import logging
import os
import secrets
import socket
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.db.base import new_id, utcnow
from posthouse.db.models import DeliveryStatus
from posthouse.db.outage import OutageLog, is_unavailable
from posthouse.delivery import blocks, screening
from posthouse.delivery.blocks import DestinationBlocks, Judged
from posthouse.delivery.content import (
    HookChain,
    MessageContent,
    RecipientHook,
    from_domain,
    identity_domains,
    message_content,
)
from posthouse.delivery.envelope import envelope_sender
from posthouse.delivery.outcomes import GAVE_UP, classify
from posthouse.delivery.repository import ClaimedDelivery, QueueRepository
from posthouse.delivery.retry import next_attempt_at
from posthouse.delivery.transports.base import Outcome, OutgoingMail, SendResult, Transport
from posthouse.domains import service as domains_service
from posthouse.domains.recheck import DomainRechecker
from posthouse.events import service as events_service
from posthouse.events.types import EventType
from posthouse.protections import idempotency
from posthouse.tracking.hook import TrackingHook

log = logging.getLogger(__name__)

_CONTENT_CACHE_SIZE = 512
_RECORD_BATCH = 500
_RENEW_BATCH = 500


@dataclass(frozen=True)
class _Result:
    delivery: ClaimedDelivery
    judged: Judged
    started_at: datetime
    finished_at: datetime

    @property
    def send(self) -> SendResult:
        return self.judged.send


class Worker:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: Transport,
        settings: Settings,
        owner: str | None = None,
        recipient_hook: RecipientHook | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.transport = transport
        # Tracking (issue 18) is always on the chain: it gives a copy of its own only to
        # deliveries of messages that asked for tracking or unsubscribe.
        self.tracking = TrackingHook(settings)
        self._before_tracking = recipient_hook
        self.recipient_hook: RecipientHook = (
            HookChain(recipient_hook, self.tracking) if recipient_hook else self.tracking
        )
        self.settings = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.wakeup = asyncio.Event()
        self._send_slots = asyncio.Semaphore(settings.worker_concurrency)
        # Claim again once no more than a round of sends is left waiting for a slot, and
        # hold at most four rounds: enough that a claim's queries serve a few dozen
        # deliveries, few enough that a burst is still shared with the other workers.
        self._refill_below = settings.worker_concurrency * 2
        self._max_held = settings.worker_concurrency * 4
        self._in_flight: set[asyncio.Task[None]] = set()
        # Dispatched but still waiting for a send slot: what a stopping worker gives back.
        self._waiting: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._stopping = False
        self._outages = OutageLog()
        self._room = asyncio.Event()
        # Claimed and not yet recorded: the deliveries whose leases this worker renews.
        self._held: set[uuid.UUID] = set()
        self._results: asyncio.Queue[_Result] = asyncio.Queue()
        self._contents: OrderedDict[uuid.UUID, MessageContent] = OrderedDict()
        self._last_sweep = 0.0
        self._blocks = DestinationBlocks(
            action=settings.block_action,
            backoff_seconds=settings.block_backoff_seconds,
            max_backoff_seconds=settings.block_backoff_max_seconds,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; sends in flight then finish and are recorded."""
        bookkeeping = self._start_bookkeeping()
        rechecker = DomainRechecker(
            sessionmaker=self.sessionmaker,
            resolver=domains_service.verification_resolver(self.settings),
            interval_seconds=self.settings.domain_recheck_seconds,
        )
        rechecks = asyncio.create_task(rechecker.run(stop), name="posthouse-domain-recheck")
        try:
            while not stop.is_set():
                # A claim is a transaction of several queries: the next one waits until
                # the deliveries claimed before are nearly all under way.
                if len(self._in_flight) >= self._refill_below:
                    self._room.clear()
                    await _first_of(self._room, stop)
                    continue
                try:
                    claimed = await self._claim_and_dispatch()
                except Exception as error:
                    self._failed(error, "claiming deliveries failed; retrying shortly")
                    claimed = 0
                if not claimed:
                    await self._idle(stop)
            # A graceful stop. Not in `finally`: when the task is cancelled instead, the
            # recorder may be cancelled too, and waiting for it would never end.
            await self._stop_within(self.settings.worker_shutdown_seconds)
        finally:
            await _cancel(*bookkeeping, rechecks)

    async def _stop_within(self, bound: float) -> None:
        """Give back what has not started, let sends on the wire finish and record them,
        all within ``bound`` seconds; what cannot be recorded in time keeps its lease
        (and is sent again once the lease expires, as after a crash)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        self._stopping = True
        unstarted = list(self._waiting)
        for task in self._waiting.values():
            task.cancel()
        self._waiting.clear()
        on_wire = len(self._in_flight) - len(unstarted)
        given_back = await self._give_back(unstarted)
        log.info(
            "stopping: gave back %d of %d deliveries not yet started; %d sends on the wire "
            "get up to %.1f s",
            given_back,
            len(unstarted),
            on_wire,
            bound,
        )
        cut_off = 0
        if self._in_flight:
            # Leave time to record the outcomes and close the connections.
            sending = deadline - min(1.5, bound * 0.2) - loop.time()
            _, pending = await asyncio.wait(self._in_flight, timeout=max(sending, 0))
            for task in pending:
                task.cancel()
            cut_off = len(pending)
            if pending:
                await asyncio.wait(pending)
        try:
            async with asyncio.timeout(max(deadline - min(0.5, bound * 0.1) - loop.time(), 0)):
                await self._results.join()
        except TimeoutError:
            log.warning(
                "stopped with %d outcomes unrecorded: their leases will expire and they "
                "will be sent again",
                self._results.qsize(),
            )
            return
        if cut_off:
            log.warning(
                "stopped: %d sends cut off at the shutdown bound, recorded as deferred", cut_off
            )
        log.info("stopped: %d sends finished and recorded", on_wire - cut_off)

    async def _give_back(self, delivery_ids: list[uuid.UUID]) -> int:
        self._held.difference_update(delivery_ids)
        if not delivery_ids:
            return 0
        try:
            async with self.sessionmaker.begin() as session:
                return await QueueRepository(session).give_back(
                    owner=self.owner, delivery_ids=delivery_ids, now=utcnow()
                )
        except Exception:
            log.exception(
                "giving back %d deliveries failed; their leases will expire", len(delivery_ids)
            )
            return 0

    def _failed(self, error: Exception, message: str) -> None:
        """A database outage is one line a second; anything else gets its traceback."""
        if is_unavailable(error):
            self._outages.note(error)
        else:
            log.error(message, exc_info=error)

    async def run_until_idle(self) -> int:
        """Deliver everything due now, then return how many attempts were made."""
        bookkeeping = self._start_bookkeeping()
        total = 0
        try:
            while True:
                claimed = await self._claim_and_dispatch()
                if self._in_flight:
                    await asyncio.wait(self._in_flight)
                await self._results.join()
                total += claimed
                if not claimed:
                    return total
        finally:
            await _cancel(*bookkeeping)

    def _start_bookkeeping(self) -> tuple[asyncio.Task[None], asyncio.Task[None]]:
        """The tasks that record outcomes and renew the leases of held deliveries."""
        return (
            asyncio.create_task(self._record_forever(), name="posthouse-recorder"),
            asyncio.create_task(self._renew_leases_forever(), name="posthouse-leases"),
        )

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wakeup.wait())]
        try:
            await asyncio.wait(
                waiters,
                timeout=self.settings.worker_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.wakeup.clear()

    async def _claim_and_dispatch(self) -> int:
        limit = min(self.settings.worker_batch_size, self._max_held - len(self._in_flight))
        now = utcnow()
        sweep_every = min(5.0, self.settings.lease_seconds / 2)
        async with self.sessionmaker.begin() as session:
            queue = QueueRepository(session)
            if now.timestamp() - self._last_sweep >= sweep_every:
                self._last_sweep = now.timestamp()
                released = await queue.release_expired_leases(now=now)
                if released:
                    log.warning("released %d deliveries whose lease expired", released)
                await idempotency.delete_expired(session)
            claimed = await queue.claim(
                owner=self.owner,
                limit=limit,
                now=now,
                lease=timedelta(seconds=self.settings.lease_seconds),
            )
            # Suspension and suppression are checked again at send time.
            sendable = await screening.screen(session, claimed=claimed)
            wanted = {d.message_id for d in sendable}
            # Each send gets its content from here, not from the cache later: loading this
            # claim's (or a later claim's) messages may evict entries before they are sent.
            contents = {m: self._contents[m] for m in wanted & self._contents.keys()}
            for message_id in contents:
                self._contents.move_to_end(message_id)
            missing = wanted - contents.keys()
            if missing:
                loaded = await queue.contents(list(missing))
                identities = await domains_service.sending_identities(
                    session,
                    workspace_ids_and_domains={
                        (message.workspace_id, domain)
                        for message, _ in loaded.values()
                        for domain in identity_domains(message)
                    },
                )
                for message, attachments in loaded.values():
                    content = message_content(message, attachments, identities)
                    self._remember(content)
                    contents[message.id] = content
            # Click targets are recorded before any copy pointing at them is sent.
            await self.tracking.prepare(
                session,
                deliveries=[
                    (
                        d.id,
                        d.recipient,
                        (content := contents[d.message_id]).message,
                        content.mime,
                        content.return_path_domain,
                    )
                    for d in sendable
                ],
                before=self._before_tracking,
            )
        self._held.update(delivery.id for delivery in sendable)
        for delivery in sendable:
            task = asyncio.create_task(self._deliver(delivery, contents[delivery.message_id]))
            self._in_flight.add(task)
            self._waiting[delivery.id] = task
            task.add_done_callback(self._sent)
        return len(claimed)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if len(self._in_flight) < self._refill_below:
            self._room.set()

    async def _renew_leases_forever(self) -> None:
        """Every third of a lease, extend the leases of every delivery still held."""
        lease = timedelta(seconds=self.settings.lease_seconds)
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            held = list(self._held)
            for start in range(0, len(held), _RENEW_BATCH):
                try:
                    async with self.sessionmaker.begin() as session:
                        await QueueRepository(session).renew_leases(
                            owner=self.owner,
                            delivery_ids=held[start : start + _RENEW_BATCH],
                            until=utcnow() + lease,
                        )
                except Exception as error:
                    self._failed(error, "renewing leases failed; trying again in a third of one")

    def _remember(self, content: MessageContent) -> None:
        self._contents[content.message.id] = content
        self._contents.move_to_end(content.message.id)
        while len(self._contents) > _CONTENT_CACHE_SIZE:
            self._contents.popitem(last=False)

    async def _deliver(self, delivery: ClaimedDelivery, content: MessageContent) -> None:
        async with self._send_slots:
            self._waiting.pop(delivery.id, None)
            started = utcnow()
            sending_domain = from_domain(content.message)
            # A destination that blocks us is not sent to until its backoff ends.
            held = self._blocks.held_back(delivery, sending_domain=sending_domain)
            if held is not None:
                await self._results.put(_Result(delivery, held, started, utcnow()))
                return
            try:
                mail = OutgoingMail(
                    envelope_from=envelope_sender(
                        content.message,
                        delivery_id=delivery.id,
                        return_path_domain=content.return_path_domain,
                        secret=self.settings.secret_key.get_secret_value(),
                    ),
                    recipient=delivery.recipient,
                    data=content.bytes_for(
                        self.recipient_hook, recipient=delivery.recipient, delivery_id=delivery.id
                    ),
                    crlf=True,
                )
                async with asyncio.timeout(self.settings.smtp_timeout_seconds * 3):
                    result = await self.transport.send(mail)
            except Exception as error:
                log.warning("delivery %s failed: %r", delivery.id, error)
                result = classify(error)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # The shutdown bound: the server may have the message (RFC 1047).
                reply = "4.4.2 cut off when the worker stopped; it may have been delivered"
                result = SendResult(Outcome.DEFERRED, None, reply)
            judged = self._blocks.judge(result, delivery, sending_domain=sending_domain)
            await self._results.put(_Result(delivery, judged, started, utcnow()))

    async def _record_forever(self) -> None:
        while True:
            batch = [await self._results.get()]
            while len(batch) < _RECORD_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            delay = 0.1
            while True:
                try:
                    async with self.sessionmaker.begin() as session:
                        await self._record(session, batch)
                    break
                except Exception as error:
                    # Keep the outcomes: the database may come back before the leases expire.
                    self._failed(error, f"recording {len(batch)} outcomes failed; retrying")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self._held.difference_update(result.delivery.id for result in batch)
            for _ in batch:
                self._results.task_done()

    async def _record(self, session: AsyncSession, batch: list[_Result]) -> None:
        updates, attempts, events = [], [], []
        for result in batch:
            delivery, send, verdict = result.delivery, result.send, result.judged.verdict
            status, event_type, next_at = self._status_after(result)
            reply = send.reply
            if status == DeliveryStatus.BOUNCED and send.outcome == Outcome.DEFERRED:
                reply = f"{GAVE_UP}{delivery.attempts} attempts: {send.reply}"
            updates.append(
                {
                    "b_id": delivery.id,
                    "b_attempts": delivery.attempts,
                    "b_status": status,
                    "b_next_attempt_at": next_at or result.finished_at,
                    "b_code": send.code,
                    "b_reply": reply[:2000],
                    "b_class": str(verdict.klass) if verdict else None,
                    "b_subclass": verdict.subclass if verdict else None,
                    "b_sent_at": result.finished_at if status == DeliveryStatus.SENT else None,
                    "b_updated_at": result.finished_at,
                }
            )
            attempts.append(
                {
                    "id": new_id(),
                    "delivery_id": delivery.id,
                    "number": delivery.attempts,
                    "started_at": result.started_at,
                    "finished_at": result.finished_at,
                    "outcome": send.outcome,
                    "smtp_code": send.code,
                    "smtp_reply": send.reply[:2000],
                    "remote_host": send.remote_host,
                }
            )
            suffix = "" if event_type != EventType.DELIVERY_DELAY else f":{delivery.attempts}"
            events.append(
                events_service.NewEvent(
                    workspace_id=delivery.workspace_id,
                    message_id=delivery.message_id,
                    delivery_id=delivery.id,
                    type=event_type,
                    occurred_at=result.finished_at,
                    dedupe_key=f"{delivery.id}:{event_type}{suffix}",
                    data=_event_data(result, status, reply),
                )
            )
        queue = QueueRepository(session)
        await queue.record_outcomes(owner=self.owner, updates=updates)
        await queue.add_attempts(attempts)
        await events_service.ingest(session, events)
        await blocks.record(session, [result.judged for result in batch])

    def _status_after(self, result: _Result) -> tuple[DeliveryStatus, EventType, datetime | None]:
        outcome = result.send.outcome
        if outcome == Outcome.SENT:
            return DeliveryStatus.SENT, EventType.DELIVERY, None
        if outcome == Outcome.BOUNCED:
            return DeliveryStatus.BOUNCED, EventType.BOUNCE, None
        if outcome == Outcome.REJECTED:
            return DeliveryStatus.REJECTED, EventType.REJECT, None
        next_at = next_attempt_at(
            attempts=result.delivery.attempts,
            now=result.finished_at,
            expires_at=result.delivery.expires_at,
            base_seconds=self.settings.retry_base_seconds,
            max_seconds=self.settings.retry_max_seconds,
        )
        if next_at is None:
            return DeliveryStatus.BOUNCED, EventType.BOUNCE, None
        if result.send.retry_after:
            # The destination asked us to slow down: no sooner than it said.
            wait = timedelta(seconds=result.send.retry_after)
            next_at = min(max(next_at, result.finished_at + wait), result.delivery.expires_at)
        return DeliveryStatus.DEFERRED, EventType.DELIVERY_DELAY, next_at


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _cancel(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    # Let them unwind before returning: a task cancelled in the middle of a query must
    # give its connection back before the caller disposes of the engine.
    await asyncio.gather(*tasks, return_exceptions=True)


def _event_data(result: _Result, status: DeliveryStatus, reply: str) -> dict[str, object]:
    data: dict[str, object] = {
        "recipient": result.delivery.recipient,
        "smtp_code": result.send.code,
        "smtp_reply": reply[:2000],
        "remote_host": result.send.remote_host,
        "attempt": result.delivery.attempts,
    }
    return data | result.judged.event_data(result.delivery, failed=status == DeliveryStatus.BOUNCED)
