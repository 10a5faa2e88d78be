"""Idempotency keys through the native API, and automatic duplicate detection."""

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.db.base import utcnow
from posthouse.db.models import IdempotencyRecord, Sender
from posthouse.delivery.worker import Worker
from posthouse.protections import idempotency
from posthouse.sending.ids import parse_reference_id
from tests.conftest import SenderTokens, make_sender
from tests.protections.support import message_count, send, set_workspace, workspace
from tests.smtp_server import SmtpServer


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


class TestIdempotencyKey:
    async def test_same_key_and_request_replays_the_response_and_sends_nothing_new(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
        worker: Worker,
        smtp_server: SmtpServer,
    ) -> None:
        first = await send(client, sender, ["alice@example.com"], headers=_key("order-42"))
        again = await send(client, sender, ["alice@example.com"], headers=_key("order-42"))

        assert first.status_code == again.status_code == 202
        assert "Idempotency-Replayed" not in first.headers
        assert again.headers["Idempotency-Replayed"] == "true"
        assert again.json() == first.json()
        assert await message_count(sessionmaker) == 1
        await worker.run_until_idle()
        assert len(smtp_server.received) == 1

    async def test_same_key_with_a_different_request_is_a_409(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await send(client, sender, ["alice@example.com"], headers=_key("k1"))

        other = await send(client, sender, ["bob@example.com"], headers=_key("k1"))

        assert other.status_code == 409
        assert other.json()["status"] == 409
        assert await message_count(sessionmaker) == 1

    async def test_a_request_that_failed_validation_does_not_keep_the_key(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        bad = await send(client, sender, ["not an address"], headers=_key("k2"))
        good = await send(client, sender, ["alice@example.com"], headers=_key("k2"))

        assert bad.status_code == 400
        assert good.status_code == 202
        assert "Idempotency-Replayed" not in good.headers

    async def test_a_refused_send_does_not_keep_the_key(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await set_workspace(sessionmaker, monthly_quota=1)
        await send(client, sender, ["first@example.com"])
        refused = await send(client, sender, ["alice@example.com"], headers=_key("k3"))
        await set_workspace(sessionmaker, monthly_quota=None)

        retried = await send(client, sender, ["alice@example.com"], headers=_key("k3"))

        assert refused.status_code == 400
        assert retried.status_code == 202
        assert "Idempotency-Replayed" not in retried.headers

    async def test_a_request_still_in_flight_gets_409_with_retry_after(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        ws = await workspace(sessionmaker)
        async with sessionmaker.begin() as session:
            owner = await session.scalar(select(Sender.id).where(Sender.email == sender.email))
            # A claim another api process made and has not completed yet.
            claim = await idempotency.claim(
                session,
                workspace_id=ws.id,
                scope="native",
                key=idempotency.owned_key("busy", owner),
                request_hash="x",
            )
        assert isinstance(claim, idempotency.Claim)

        response = await send(client, sender, ["alice@example.com"], headers=_key("busy"))

        assert response.status_code == 409
        assert response.headers["Retry-After"] == "1"
        assert await message_count(sessionmaker) == 0

    async def test_twenty_concurrent_identical_requests_create_exactly_one_email(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        responses = await asyncio.gather(
            *(send(client, sender, ["alice@example.com"], headers=_key("burst")) for _ in range(20))
        )

        assert await message_count(sessionmaker) == 1
        accepted = [r for r in responses if r.status_code == 202]
        assert len([r for r in accepted if "Idempotency-Replayed" not in r.headers]) == 1
        assert len({r.json()["referenceId"] for r in accepted}) == 1
        for response in responses:
            assert response.status_code in (202, 409)
            if response.status_code == 409:
                assert response.headers["Retry-After"]

    async def test_keys_are_scoped_to_the_workspace(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        other = await make_sender(sessionmaker, "news@other.example", workspace="other")
        mine = await send(client, sender, ["alice@example.com"], headers=_key("shared"))
        theirs = await send(client, other, ["alice@example.com"], headers=_key("shared"))

        assert mine.status_code == theirs.status_code == 202
        assert "Idempotency-Replayed" not in theirs.headers
        assert mine.json()["referenceId"] != theirs.json()["referenceId"]

    async def test_an_expired_key_is_a_new_request(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        first = await send(client, sender, ["alice@example.com"], headers=_key("old"))
        async with sessionmaker.begin() as session:
            await session.execute(
                update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1))
            )

        again = await send(client, sender, ["alice@example.com"], headers=_key("old"))

        assert again.status_code == 202
        assert again.json()["referenceId"] != first.json()["referenceId"]

    async def test_replies_honour_the_key_too(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        original = (await send(client, sender, ["alice@example.com"])).json()["referenceId"]
        files = {"files": [("payload", (None, '{"body": "<p>Refunded</p>"}', "application/json"))]}
        url = f"/api/v1/emails/{original}/reply"
        headers = {**sender.headers, **_key("reply-1")}

        first = await client.post(url, headers=headers, **files)
        again = await client.post(url, headers=headers, **files)

        assert first.status_code == 202
        assert again.headers["Idempotency-Replayed"] == "true"
        assert again.json() == first.json()
        assert await message_count(sessionmaker) == 2

    async def test_keys_must_be_1_to_256_visible_characters(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        for bad in ("x" * 257, "with space", "caf\u00e9"):
            response = await client.post(
                "/api/v1/emails",
                headers={**sender.headers, "Idempotency-Key": bad.encode()},
                **_multipart(sender),
            )
            assert response.status_code == 400, bad
        longest = await send(client, sender, ["alice@example.com"], headers=_key("k" * 256))
        assert longest.status_code == 202
        assert await message_count(sessionmaker) == 1


def _multipart(sender: SenderTokens) -> dict[str, object]:
    from tests.conftest import multipart
    from tests.protections.support import payload

    return multipart(payload(sender, ["alice@example.com"]))


class TestDuplicateDetection:
    async def test_an_identical_send_within_the_window_is_found(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        from sqlalchemy import select

        from posthouse.db.models import Message

        reference = (await send(client, sender, ["alice@example.com"])).json()["referenceId"]
        async with sessionmaker() as session:
            message = await session.scalar(select(Message))
            assert message is not None
            found = await idempotency.find_duplicate(
                session, workspace_id=message.workspace_id, content_hash=message.content_hash
            )
            outside = await idempotency.find_duplicate(
                session,
                workspace_id=message.workspace_id,
                content_hash=message.content_hash,
                within=timedelta(0),
            )
            different = await idempotency.find_duplicate(
                session, workspace_id=message.workspace_id, content_hash="0" * 64
            )

        assert found is not None
        assert found.id == parse_reference_id(reference)
        assert outside is None
        assert different is None


class TestDuplicateWindow:
    async def test_submit_with_a_window_returns_the_earlier_identical_message(
        self, sender: SenderTokens, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        from posthouse.accounts.service import authenticate_sender
        from posthouse.sending import service as sending_service
        from posthouse.sending.schemas import Caller, SendRequest

        options = sending_service.SubmitOptions(
            duplicate_window=timedelta(hours=1), require_verified_domain=False
        )

        def request(subject: str) -> SendRequest:
            return SendRequest(
                sender=sender.email, to=["alice@example.com"], subject=subject, html="<p>x</p>"
            )

        results = []
        for subject in ("Order 1", "Order 1", "Order 2"):
            async with sessionmaker.begin() as session:
                found = await authenticate_sender(
                    session, access_token=sender.access_token, secret_token=sender.secret_token
                )
                caller = Caller(found.workspace, found.sender)
                results.append(
                    await sending_service.submit(
                        session, caller=caller, request=request(subject), options=options
                    )
                )

        first, again, other = results
        assert again.duplicate
        assert again.message.id == first.message.id
        assert not other.duplicate
        assert await message_count(sessionmaker) == 2
