"""Faults with real processes: `posthouse worker` killed mid-delivery, and two workers
draining one queue. Each worker is a subprocess; the SMTP server is real."""

import asyncio
import threading
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
