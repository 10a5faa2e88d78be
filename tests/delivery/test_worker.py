"""The worker against a real SMTP server: outcomes, retries, events, connection reuse."""

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.engine import create_engine, create_sessionmaker
from posthouse.db.models import Event
from posthouse.delivery.repository import ClaimedDelivery, QueueRepository
from posthouse.delivery.transports.factory import create_transport
from posthouse.delivery.worker import Worker
from tests.conftest import PG_URL, SenderTokens, multipart
from tests.helpers import attempts, deliveries, events, settle, statuses, wait_until
from tests.smtp_server import RecordingHandler, SmtpServer, free_port

PAYLOAD = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Your order",
    "body": "<p>Shipped.</p>",
}


class OfferRecordingHandler(RecordingHandler):
    """Also keeps every message offered in DATA, whatever the reply: retries show up."""

    def __init__(self) -> None:
        super().__init__()
        self.offered: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.offered.append(envelope.original_content or b"")
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(OfferRecordingHandler()).start()
    yield server
    server.stop()


async def send(client: httpx.AsyncClient, sender: SenderTokens, **fields: Any) -> str:
    response = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart({**PAYLOAD, **fields})
    )
    assert response.status_code == 202, response.text
    return str(response.json()["referenceId"])


def message_ids(offered: list[bytes]) -> list[str]:
    ids = []
    for data in offered:
        header = next(line for line in data.split(b"\r\n") if line.startswith(b"Message-ID:"))
        ids.append(header.split(b":", 1)[1].strip().decode())
    return ids


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Retries slow enough that one run_until_idle() cannot make the next attempt too,
    # even on a loaded machine: the tests look at the queue between attempts.
    return settings.model_copy(update={"retry_base_seconds": 0.3, "retry_max_seconds": 0.6})


class TestOutcomes:
    async def test_a_250_is_sent_once_with_one_attempt_and_a_delivery_event(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        reference = await send(client, sender)

        assert await worker.run_until_idle() == 1

        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.attempts, delivery.last_smtp_code) == ("sent", 1, 250)
        assert delivery.sent_at is not None
        assert delivery.lease_owner is None
        [attempt] = await attempts(sessionmaker, delivery.id)
        assert (attempt.number, attempt.outcome, attempt.smtp_code) == (1, "sent", 250)
        assert attempt.remote_host == "127.0.0.1"
        assert await events(sessionmaker, delivery.id) == ["Delivery"]
        async with sessionmaker() as session:
            data = await session.scalar(select(Event.data).where(Event.delivery_id == delivery.id))
        assert data == {
            "recipient": delivery.recipient,
            "smtp_code": 250,
            "smtp_reply": delivery.last_smtp_reply,
            "remote_host": "127.0.0.1",
            "attempt": 1,
        }
        assert len(smtp_server.received) == 1
        assert await worker.run_until_idle() == 0

    @pytest.mark.parametrize("stage", ["RCPT", "DATA"])
    async def test_451_then_250_is_delivered_exactly_once_after_two_attempts(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        stage: str,
    ) -> None:
        replies = (
            smtp_server.handler.rcpt_replies
            if stage == "RCPT"
            else smtp_server.handler.data_replies
        )
        replies.append("451 4.3.0 Try again later")
        reference = await send(client, sender)

        await worker.run_until_idle()
        [deferred] = await deliveries(sessionmaker, reference)
        await settle(worker, sessionmaker)

        assert (deferred.status, deferred.last_smtp_code) == ("deferred", 451)
        assert deferred.next_attempt_at > deferred.last_attempt_at
        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.attempts) == ("sent", 2)
        assert [
            (a.number, a.outcome, a.smtp_code) for a in await attempts(sessionmaker, delivery.id)
        ] == [
            (1, "deferred", 451),
            (2, "sent", 250),
        ]
        assert await events(sessionmaker, delivery.id) == ["DeliveryDelay", "Delivery"]
        assert len(smtp_server.received) == 1

    async def test_550_bounces_at_once_and_is_never_retried(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
    ) -> None:
        smtp_server.handler.rcpt_replies.append("550 5.1.1 No such user here")
        reference = await send(client, sender)

        await worker.run_until_idle()
        await asyncio.sleep(settings.retry_max_seconds + 0.1)  # any retry would be due
        assert await worker.run_until_idle() == 0

        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.attempts, delivery.last_smtp_code) == ("bounced", 1, 550)
        assert delivery.last_smtp_reply == "5.1.1 No such user here"
        assert await events(sessionmaker, delivery.id) == ["Bounce"]
        assert smtp_server.received == []

    async def test_a_recipient_refused_among_several_does_not_stop_the_others(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        smtp_server.handler.rcpt_replies.append("550 5.1.1 No such user here")
        reference = await send(client, sender, to=["gone@example.com"])
        await worker.run_until_idle()
        second = await send(client, sender, to=["alice@example.com", "bob@example.com"])

        await worker.run_until_idle()

        assert await statuses(sessionmaker, reference) == ["bounced"]
        assert await statuses(sessionmaker, second) == ["sent", "sent"]
        assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
            "alice@example.com",
            "bob@example.com",
        ]

    async def test_the_message_id_is_the_same_on_every_attempt(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        smtp_server.handler.data_replies.extend(["451 4.3.0 later", "452 4.3.1 full", "250 OK"])
        await send(client, sender)

        await settle(worker, sessionmaker)

        offered = smtp_server.handler.offered  # type: ignore[attr-defined]
        assert len(offered) == 3
        assert len(set(message_ids(offered))) == 1
        assert smtp_server.received[0].data == offered[-1]


class TestRetries:
    @pytest.fixture
    def dead_port(self) -> int:
        return free_port()

    @pytest.fixture
    def settings(self, settings: Settings, dead_port: int) -> Settings:
        return settings.model_copy(
            update={
                "delivery_url": f"smtp://127.0.0.1:{dead_port}",
                "smtp_timeout_seconds": 0.3,
            }
        )

    async def test_connection_refused_defers_and_a_later_attempt_delivers(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: async_sessionmaker,
        dead_port: int,
    ) -> None:
        reference = await send(client, sender)

        await worker.run_until_idle()
        [deferred] = await deliveries(sessionmaker, reference)
        assert (deferred.status, deferred.last_smtp_code) == ("deferred", None)
        assert (
            "ConnectError" in deferred.last_smtp_reply
            or "refused" in deferred.last_smtp_reply.lower()
        )
        server = SmtpServer(port=dead_port).start()
        try:
            await settle(worker, sessionmaker)
        finally:
            server.stop()

        [delivery] = await deliveries(sessionmaker, reference)
        assert delivery.status == "sent"
        assert delivery.attempts >= 2
        assert [r.rcpt_tos for r in server.received] == [["alice@example.com"]]
        assert (await events(sessionmaker, delivery.id))[-1] == "Delivery"

    async def test_a_server_that_never_answers_times_out_and_is_retried(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: async_sessionmaker,
        dead_port: int,
    ) -> None:
        connections = 0

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read()  # never greets; waits for the client to give up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", dead_port)
        try:
            reference = await send(client, sender)
            await worker.run_until_idle()
            [first] = await deliveries(sessionmaker, reference)
            await asyncio.sleep(0.4)
            await worker.run_until_idle()
            [second] = await deliveries(sessionmaker, reference)
        finally:
            server.close()

        assert (first.status, first.attempts) == ("deferred", 1)
        assert "timed out" in first.last_smtp_reply.lower()
        assert (second.status, second.attempts) == ("deferred", 2)
        assert connections == 2
        assert await events(sessionmaker, first.id) == ["DeliveryDelay", "DeliveryDelay"]


class TestQueueLifetime:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={
                "delivery_url": f"smtp://127.0.0.1:{free_port()}",
                # Long enough for a few retries even on a loaded machine.
                "queue_lifetime_seconds": 1.0,
                "retry_base_seconds": 0.05,
                "retry_max_seconds": 0.1,
            }
        )

    async def test_retries_end_with_a_bounce_when_the_queue_lifetime_is_over(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        sessionmaker: async_sessionmaker,
    ) -> None:
        reference = await send(client, sender)

        await settle(worker, sessionmaker)

        [delivery] = await deliveries(sessionmaker, reference)
        assert delivery.status == "bounced"
        assert delivery.attempts >= 2
        assert delivery.last_smtp_reply.startswith(f"gave up after {delivery.attempts} attempts")
        tries = await attempts(sessionmaker, delivery.id)
        # Deferrals within the lifetime are retried; the first to end after it is the
        # last (retries are scheduled up to the end, so it may start a moment before).
        assert tries[-1].finished_at >= delivery.expires_at
        assert all(a.finished_at < delivery.expires_at for a in tries[:-1])
        assert all(a.outcome == "deferred" for a in tries)
        kinds = await events(sessionmaker, delivery.id)
        assert kinds == ["DeliveryDelay"] * (delivery.attempts - 1) + ["Bounce"]


class TestConnections:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"smtp_connections": 2})

    async def test_many_deliveries_share_a_few_connections(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        await send(client, sender, to=[f"user{i}@example.com" for i in range(20)])
        await worker.run_until_idle()
        await send(client, sender, to=["late@example.com"])

        await worker.run_until_idle()

        received = smtp_server.received
        assert len(received) == 21
        peers = {r.peer for r in received}
        assert 1 <= len(peers) <= 2
        assert received[-1].peer in {r.peer for r in received[:-1]}


class TestContentCache:
    async def test_a_retry_is_not_lost_from_the_cache_by_new_messages_claimed_with_it(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr("posthouse.delivery.worker._CONTENT_CACHE_SIZE", 2)
        smtp_server.handler.data_replies.append("451 4.3.0 Try again later")
        retried = await send(client, sender)
        await worker.run_until_idle()
        await asyncio.sleep(settings.retry_max_seconds)  # due again with the next ones
        await send(client, sender, to=["bob@example.com"])
        await send(client, sender, to=["carol@example.com"])

        await settle(worker, sessionmaker)

        [delivery] = await deliveries(sessionmaker, retried)
        assert (delivery.status, delivery.attempts) == ("sent", 2)
        assert len(smtp_server.received) == 3


class TestLeases:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # Renewal runs every third of a lease: 1.6 s leave it room on a loaded machine.
        return settings.model_copy(update={"lease_seconds": 1.6})

    async def test_a_send_slower_than_the_lease_keeps_its_claim_and_is_sent_once(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
        settings: Settings,
    ) -> None:
        # DATA takes two and a half leases; the other worker sweeps expired leases all
        # along and would take the delivery over if the first stopped renewing.
        smtp_server.handler.data_delay = 4.0  # under the suite's 5 s SMTP timeout
        reference = await send(client, sender)
        workers = [
            Worker(
                sessionmaker=sessionmaker, transport=create_transport(settings), settings=settings
            )
            for _ in range(2)
        ]
        stop = asyncio.Event()
        running = [asyncio.create_task(worker.run(stop)) for worker in workers]

        async def sent() -> bool:
            return await statuses(sessionmaker, reference) == ["sent"]

        try:
            # A second claim would have offered its DATA before the first one ended.
            await wait_until(sent, within=20)
        finally:
            stop.set()
            await asyncio.gather(*running)
            for worker in workers:
                await worker.transport.close()

        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.attempts, delivery.lease_owner) == ("sent", 1, None)
        assert len(smtp_server.handler.offered) == 1
        assert [a.number for a in await attempts(sessionmaker, delivery.id)] == [1]

    async def test_an_outcome_of_an_earlier_claim_is_not_recorded_on_a_later_one(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker,
    ) -> None:
        reference = await send(client, sender)
        lease = timedelta(seconds=60)

        async def claim(now: datetime) -> ClaimedDelivery:
            async with sessionmaker.begin() as session:
                queue = QueueRepository(session)
                await queue.release_expired_leases(now=now)
                [claimed] = await queue.claim(owner="w", limit=10, now=now, lease=lease)
                return claimed

        first = await claim(utcnow())
        # The same worker claims it again once the first lease has expired.
        second = await claim(utcnow() + 2 * lease)
        assert (first.attempts, second.attempts) == (1, 2)

        async def record(claimed: ClaimedDelivery, reply: str) -> None:
            async with sessionmaker.begin() as session:
                await QueueRepository(session).record_outcomes(
                    owner="w",
                    updates=[
                        {
                            "b_id": claimed.id,
                            "b_attempts": claimed.attempts,
                            "b_status": "sent",
                            "b_next_attempt_at": utcnow(),
                            "b_code": 250,
                            "b_reply": reply,
                            "b_class": None,
                            "b_subclass": None,
                            "b_sent_at": utcnow(),
                            "b_updated_at": utcnow(),
                        }
                    ],
                )

        await record(first, "250 first claim")
        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.last_smtp_reply) == ("sending", None)
        await record(second, "250 second claim")
        [delivery] = await deliveries(sessionmaker, reference)
        assert (delivery.status, delivery.last_smtp_reply) == ("sent", "250 second claim")


class TestClaims:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"worker_concurrency": 1})

    async def test_a_worker_holds_at_most_four_rounds_of_sends_and_leaves_the_rest_queued(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        worker: Worker,
        smtp_server: SmtpServer,
        sessionmaker: async_sessionmaker,
    ) -> None:
        # While DATA is held no send can finish, so the deliveries in `sending` are
        # exactly those the worker holds (none is sent and waiting to be recorded).
        smtp_server.handler.data_gate = gate = threading.Event()
        await send(client, sender, to=[f"user{i}@example.com" for i in range(12)])
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))

        async def claimed() -> bool:
            return "sending" in await statuses(sessionmaker)

        async def drained() -> bool:
            return set(await statuses(sessionmaker)) == {"sent"}

        try:
            await wait_until(claimed, within=20)
            # The worker now waits for a slot to free; give it time to claim more anyway.
            await asyncio.sleep(0.3)
            held = await statuses(sessionmaker)
            gate.set()
            await wait_until(drained, within=20)
        finally:
            gate.set()
            stop.set()
            await running
        assert sorted(held) == ["queued"] * 8 + ["sending"] * 4
        assert len(smtp_server.received) == 12


class TestDatabaseUnavailable:
    async def test_a_worker_logs_one_line_a_second_and_no_tracebacks(
        self, settings: Settings, tmp_path: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        if PG_URL:
            url = make_url(settings.database_url).set(port=free_port())
            unreachable = url.render_as_string(hide_password=False)
        else:
            unreachable = f"sqlite+aiosqlite:///{tmp_path}/missing/posthouse.db"
        engine = create_engine(unreachable)
        transport = create_transport(settings)
        worker = Worker(
            sessionmaker=create_sessionmaker(engine), transport=transport, settings=settings
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(1.5)  # some 30 claims at the fixture's 0.05 s poll
        stop.set()
        await running
        await transport.close()
        await engine.dispose()

        worker_lines = [r for r in caplog.records if r.name.startswith("posthouse.delivery")]
        outage_lines = [r for r in caplog.records if r.name == "posthouse.db"]
        assert worker_lines == []
        assert 1 <= len(outage_lines) <= 2
        assert {r.levelname for r in outage_lines} == {"WARNING"}
        assert "database unavailable" in outage_lines[0].getMessage()
