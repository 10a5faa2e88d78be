"""Faults with real processes: `posthouse worker` killed mid-delivery, and two workers
draining one queue. Each worker is a subprocess; the SMTP server is real."""

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.config import Settings
from posthouse.db.models import Delivery
from tests.conftest import SenderTokens, multipart
from tests.helpers import attempts, deliveries, events, message_row, statuses, wait_until
from tests.processes import WorkerProcess
from tests.smtp_server import RecordingHandler, SmtpServer


class HoldingHandler(RecordingHandler):
    """Signals when a DATA starts, and remembers which client (EHLO name) sent each mail."""

    def __init__(self) -> None:
        super().__init__()
        self.data_started = threading.Event()
        self.senders: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_started.set()
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                self.senders.append(session.host_name or "")
        return reply


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(HoldingHandler()).start()
    yield server
    server.stop()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.kill()


class TestWorkerKilledMidDelivery:
    async def test_the_delivery_completes_after_the_lease_expires_with_the_same_message_id(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        processes: list[WorkerProcess],
        tmp_path: Path,
    ) -> None:
        handler = smtp_server.handler
        assert isinstance(handler, HoldingHandler)
        handler.data_delay = 60.0  # the first DATA is held until the worker dies
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(
                {
                    "from": "no-reply@yourstore.example",
                    "to": ["alice@example.com"],
                    "subject": "Do not lose me",
                    "body": "<p>Important</p>",
                }
            ),
        )
        reference = response.json()["referenceId"]
        lease = {"POSTHOUSE_LEASE_SECONDS": "1.5"}
        first = WorkerProcess(settings, tmp_path, "first", **lease)
        processes.append(first)

        assert await asyncio.to_thread(handler.data_started.wait, 30), first.text()
        first.kill()
        [held] = await deliveries(sessionmaker, reference)
        assert (held.status, held.attempts) == ("sending", 1)
        assert handler.received == []
        handler.data_delay = 0.0
        second = WorkerProcess(settings, tmp_path, "second", **lease)
        processes.append(second)

        async def sent() -> bool:
            return await statuses(sessionmaker, reference) == ["sent"]

        await wait_until(sent)
        assert second.stop() == 0

        [delivery] = await deliveries(sessionmaker, reference)
        assert delivery.attempts == 2
        assert held.lease_expires_at is not None
        assert delivery.sent_at is not None
        assert delivery.sent_at >= held.lease_expires_at
        assert [a.number for a in await attempts(sessionmaker, delivery.id)] == [2]
        assert await events(sessionmaker, delivery.id) == ["Delivery"]
        assert [r.rcpt_tos for r in handler.received] == [["alice@example.com"]]
        assert handler.senders == ["second"]
        stored = await message_row(sessionmaker, reference)
        assert handler.received[0].message()["Message-ID"] == stored.message_id_header
        assert "released 1 deliveries whose lease expired" in second.text()


class TestTwoWorkers:
    async def test_two_processes_drain_1000_deliveries_each_received_exactly_once(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        processes: list[WorkerProcess],
        tmp_path: Path,
    ) -> None:
        handler = smtp_server.handler
        assert isinstance(handler, HoldingHandler)
        # Small claims and a slower server, so that one worker cannot take and finish a
        # whole submission before the other polls: both must compete for the queue.
        handler.data_delay = 0.005
        workers = [
            WorkerProcess(settings, tmp_path, name, POSTHOUSE_WORKER_BATCH_SIZE="50")
            for name in ("worker-a", "worker-b")
        ]
        processes.extend(workers)
        for worker in workers:
            await worker.started()
        recipients = [f"user{i:04}@example.com" for i in range(1000)]

        for batch in range(4):
            response = await client.post(
                "/api/v1/emails",
                headers=sender.headers,
                **multipart(
                    {
                        "from": "no-reply@yourstore.example",
                        "to": recipients[batch * 250 : (batch + 1) * 250],
                        "subject": f"Batch {batch}",
                        "body": "<p>Hello</p>",
                    }
                ),
            )
            assert response.status_code == 202, response.text

        async def drained() -> bool:
            async with sessionmaker() as session:
                unsent = select(func.count()).where(Delivery.status != "sent")
                return await session.scalar(unsent) == 0

        await wait_until(drained, within=90)
        assert [worker.stop() for worker in workers] == [0, 0]

        received = Counter(r.rcpt_tos[0] for r in handler.received)
        assert sorted(received) == recipients
        assert set(received.values()) == {1}
        assert {d.attempts for d in await deliveries(sessionmaker)} == {1}
        shares = Counter(handler.senders)
        assert set(shares) == {"worker-a", "worker-b"}, shares


class ScriptedRelay:
    """A raw SMTP server that takes every message, except that the first one with the
    subject ``drop`` is read to its final dot and then the connection is cut, unanswered:
    as a server that queued it and crashed (or a network that failed) before the 250."""

    def __init__(self, drop: str) -> None:
        self.drop = drop.encode()
        self.dropped: list[tuple[bytes, float]] = []  # (message, when)
        self.accepted: list[tuple[bytes, float]] = []  # (message, when)
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 relay ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"DATA":
                writer.write(b"354 Go ahead\r\n")
                message = await reader.readuntil(b"\r\n.\r\n")
                if f"Subject: {self.drop.decode()}".encode() in message and not self.dropped:
                    self.dropped.append((message, time.monotonic()))
                    writer.transport.abort()
                    return
                self.accepted.append((message, time.monotonic()))
                writer.write(b"250 2.0.0 Queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 Bye\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()


class TestConnectionDroppedAfterData:
    async def test_the_attempt_is_recorded_and_retried_on_schedule_with_the_same_message_id(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        processes: list[WorkerProcess],
        tmp_path: Path,
    ) -> None:
        relay = ScriptedRelay(drop="Drop me")
        port = await relay.start()
        relayed = settings.model_copy(update={"delivery_url": f"smtp://127.0.0.1:{port}"})
        worker = WorkerProcess(
            relayed,
            tmp_path,
            "worker",
            POSTHOUSE_RETRY_BASE_SECONDS="2",
            POSTHOUSE_RETRY_MAX_SECONDS="2",
            POSTHOUSE_SMTP_CONNECTIONS="1",
        )
        processes.append(worker)
        try:
            await worker.started()
            references = []
            # The first email leaves a connection open; the second goes on it.
            for subject in ("Warm up", "Drop me"):
                response = await client.post(
                    "/api/v1/emails",
                    headers=sender.headers,
                    **multipart(
                        {
                            "from": "no-reply@yourstore.example",
                            "to": ["alice@example.com"],
                            "subject": subject,
                            "body": "<p>Hello</p>",
                        }
                    ),
                )
                references.append(response.json()["referenceId"])

                async def sent(reference: str = references[-1]) -> bool:
                    return await statuses(sessionmaker, reference) == ["sent"]

                await wait_until(sent)
            # In a thread: the worker says QUIT to the relay, served by this event loop.
            assert await asyncio.to_thread(worker.stop) == 0
        finally:
            await relay.stop()

        [delivery] = await deliveries(sessionmaker, references[1])
        first, second = await attempts(sessionmaker, delivery.id)
        assert (first.number, first.outcome, first.smtp_code) == (1, "deferred", None)
        assert first.smtp_reply.startswith("4.4.2 no reply after the message was sent")
        assert (second.number, second.outcome) == (2, "sent")
        # On the schedule (2 s, less at most a quarter of jitter), never at once.
        assert (second.started_at - first.finished_at).total_seconds() >= 1.5
        assert await events(sessionmaker, delivery.id) == ["DeliveryDelay", "Delivery"]
        # The relay saw the message twice: cut off unanswered, then again on schedule,
        # with the same Message-ID.
        [(dropped, dropped_at)] = relay.dropped
        [(copy, sent_at)] = [(m, at) for m, at in relay.accepted if b"Subject: Drop me" in m]
        assert sent_at - dropped_at >= 1.5
        stored = await message_row(sessionmaker, references[1])
        message_id = f"Message-ID: {stored.message_id_header}".encode()
        assert message_id in dropped
        assert message_id in copy
        assert relay.connections == 2


async def _send_to(client: httpx.AsyncClient, sender: SenderTokens, recipients: list[str]) -> str:
    response = await client.post(
        "/api/v1/emails",
        headers=sender.headers,
        **multipart(
            {
                "from": "no-reply@yourstore.example",
                "to": recipients,
                "subject": "Stop in time",
                "body": "<p>Hello</p>",
            }
        ),
    )
    assert response.status_code == 202, response.text
    return str(response.json()["referenceId"])


async def _sigterm(worker: WorkerProcess) -> tuple[int, float]:
    """Stop the worker; its exit status and how long it took."""
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    status = await asyncio.to_thread(worker.process.wait, 30)
    return status, time.monotonic() - started


# Four sends at a time and at most four rounds held: a worker holds 16 deliveries.
_SMALL_WORKER = {"POSTHOUSE_WORKER_CONCURRENCY": "4", "POSTHOUSE_SMTP_CONNECTIONS": "4"}


class TestStopWithinTheBound:
    async def test_sends_on_the_wire_finish_and_the_rest_is_given_back_to_another_worker(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        processes: list[WorkerProcess],
        tmp_path: Path,
    ) -> None:
        handler = smtp_server.handler
        assert isinstance(handler, HoldingHandler)
        handler.data_delay = 3.0  # every DATA reply slowed down
        first = WorkerProcess(
            settings, tmp_path, "worker-a", POSTHOUSE_WORKER_SHUTDOWN_SECONDS="6", **_SMALL_WORKER
        )
        processes.append(first)
        await first.started()
        recipients = [f"user{i:02}@example.com" for i in range(40)]
        reference = await _send_to(client, sender, recipients)
        assert await asyncio.to_thread(handler.data_started.wait, 30), first.text()

        status, took = await _sigterm(first)

        assert status == 0, first.text()
        assert took < 6 + 1.0  # the bound, and a second for the process to exit
        after_stop = await deliveries(sessionmaker, reference)
        assert Counter(d.status for d in after_stop) == {"sent": 4, "queued": 36}
        # Given back as if never claimed: due now, no lease, the attempt not counted.
        assert {(d.attempts, d.lease_owner) for d in after_stop if d.status == "queued"} == {
            (0, None)
        }
        assert "gave back 12 of 12 deliveries not yet started; 4 sends on the wire" in (
            first.text()
        )
        assert "stopped: 4 sends finished and recorded" in first.text()

        handler.data_delay = 0.0
        second = WorkerProcess(settings, tmp_path, "worker-b", **_SMALL_WORKER)
        processes.append(second)

        async def all_sent() -> bool:
            return set(await statuses(sessionmaker, reference)) == {"sent"}

        await wait_until(all_sent)
        assert second.stop() == 0
        received = Counter(r.rcpt_tos[0] for r in handler.received)
        assert sorted(received) == recipients
        assert set(received.values()) == {1}
        assert Counter(handler.senders) == {"worker-a": 4, "worker-b": 36}

    async def test_a_send_still_unanswered_at_the_bound_is_cut_off_and_retried_on_schedule(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        processes: list[WorkerProcess],
        tmp_path: Path,
    ) -> None:
        handler = smtp_server.handler
        assert isinstance(handler, HoldingHandler)
        handler.data_delay = 30.0  # no reply within the bound
        worker = WorkerProcess(
            settings, tmp_path, "worker-a", POSTHOUSE_WORKER_SHUTDOWN_SECONDS="2", **_SMALL_WORKER
        )
        processes.append(worker)
        await worker.started()
        reference = await _send_to(client, sender, ["alice@example.com"])
        assert await asyncio.to_thread(handler.data_started.wait, 30), worker.text()

        status, took = await _sigterm(worker)

        assert status == 0, worker.text()
        assert took < 2 + 1.0
        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.attempts, delivery.lease_owner) == ("deferred", 1, None)
        [attempt] = await attempts(sessionmaker, delivery.id)
        assert attempt.smtp_reply.startswith("4.4.2 cut off when the worker stopped")
        assert delivery.next_attempt_at > attempt.finished_at  # the schedule, not at once
        assert await events(sessionmaker, delivery.id) == ["DeliveryDelay"]
        assert "1 sends cut off at the shutdown bound, recorded as deferred" in worker.text()
