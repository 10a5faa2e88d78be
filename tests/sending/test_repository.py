"""MessageRepository.add: a message, its files and its queue rows, stored whole.

On PostgreSQL a send with few rows is one combined statement and a larger one several;
both shapes must store exactly what was accepted. A combined statement that is the
request's last write runs autocommitted, and its connection must go back to the pool
transactional.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import authenticate_sender
from posthouse.db.engine import create_engine, create_sessionmaker
from posthouse.db.models import Attachment, Delivery, DeliveryStatus, Message
from posthouse.protections import suppression
from posthouse.sending import service as sending_service
from posthouse.sending.schemas import AttachmentInput, Caller, SendRequest
from posthouse.sending.service import Accepted, SubmitOptions
from tests.conftest import SenderTokens


def _request(sender: SenderTokens, *, recipients: int, files: int) -> SendRequest:
    return SendRequest(
        sender=sender.email,
        to=[f"user{i}@example.com" for i in range(recipients)],
        subject="Your order",
        html="<p>Thanks</p>",
        attachments=[
            AttachmentInput(f"file{i}.pdf", bytes([i]) * (100 + i), "application/pdf")
            for i in range(files)
        ],
    )


async def _credentials(
    sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
) -> Caller:
    async with sessionmaker() as session:
        found = await authenticate_sender(
            session, access_token=sender.access_token, secret_token=sender.secret_token
        )
    return Caller(found.workspace, found.sender)


async def _submit_in(
    session: AsyncSession,
    caller: Caller,
    sender: SenderTokens,
    *,
    recipients: int,
    files: int,
    last_write: bool = False,
) -> Accepted:
    return await sending_service.submit(
        session,
        caller=caller,
        request=_request(sender, recipients=recipients, files=files),
        options=SubmitOptions(require_verified_domain=False, last_write=last_write),
    )


async def _submit(
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: SenderTokens,
    *,
    recipients: int,
    files: int,
) -> Accepted:
    async with sessionmaker.begin() as session:
        credentials = await authenticate_sender(
            session, access_token=sender.access_token, secret_token=sender.secret_token
        )
        return await _submit_in(session, credentials, sender, recipients=recipients, files=files)


async def _stored(
    sessionmaker: async_sessionmaker[AsyncSession], accepted: Accepted
) -> tuple[Message | None, list[Attachment], list[Delivery]]:
    message_id = accepted.message.id
    async with sessionmaker() as session:
        message = await session.get(Message, message_id)
        attachments = await session.scalars(
            select(Attachment)
            .where(Attachment.message_id == message_id)
            .order_by(Attachment.position)
        )
        deliveries = await session.scalars(
            select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.recipient)
        )
        return message, list(attachments), list(deliveries)


class TestAdd:
    async def test_a_small_send_is_stored_whole(
        self, sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
    ) -> None:
        accepted = await _submit(sessionmaker, sender, recipients=3, files=2)

        message, attachments, deliveries = await _stored(sessionmaker, accepted)

        assert message is not None
        assert message.subject == "Your order"
        assert [(a.filename, a.data) for a in attachments] == [
            ("file0.pdf", b"\x00" * 100),
            ("file1.pdf", b"\x01" * 101),
        ]
        assert [(d.recipient, d.status) for d in deliveries] == [
            (f"user{i}@example.com", "queued") for i in range(3)
        ]

    async def test_a_send_with_many_rows_is_stored_whole(
        self, sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
    ) -> None:
        accepted = await _submit(sessionmaker, sender, recipients=40, files=5)

        message, attachments, deliveries = await _stored(sessionmaker, accepted)

        assert message is not None
        assert [a.size for a in attachments] == [100, 101, 102, 103, 104]
        assert sorted(d.recipient for d in deliveries) == sorted(
            f"user{i}@example.com" for i in range(40)
        )

    async def test_returned_rows_carry_their_stored_defaults(
        self, sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
    ) -> None:
        accepted = await _submit(sessionmaker, sender, recipients=2, files=0)

        _, _, deliveries = await _stored(sessionmaker, accepted)

        returned = sorted(accepted.deliveries, key=lambda d: d.recipient)
        assert [(d.id, d.status, d.attempts) for d in returned] == [
            (d.id, DeliveryStatus.QUEUED, 0) for d in deliveries
        ]

    async def test_after_a_last_write_send_its_connection_is_transactional_again(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        sender: SenderTokens,
    ) -> None:
        # One pooled connection, so the second send gets the connection the first used.
        engine = create_engine(database_url, pool_size=1)
        sessions = create_sessionmaker(engine)
        credentials = await _credentials(sessions, sender)
        try:
            async with sessions() as session:
                first = await _submit_in(
                    session, credentials, sender, recipients=1, files=1, last_write=True
                )
                await session.commit()
            async with sessions() as session:
                second = await _submit_in(session, credentials, sender, recipients=1, files=1)
                await session.rollback()
        finally:
            await engine.dispose()

        assert (await _stored(sessionmaker, first))[0] is not None
        assert (await _stored(sessionmaker, second)) == (None, [], [])

    async def test_a_last_write_send_with_a_suppressed_recipient_stores_the_others(
        self, sessionmaker: async_sessionmaker[AsyncSession], sender: SenderTokens
    ) -> None:
        # The insert itself leaves user0 out (on PostgreSQL in its one statement) and
        # reports it.
        credentials = await _credentials(sessionmaker, sender)
        async with sessionmaker.begin() as session:
            await suppression.add(
                session, workspace_id=credentials.workspace.id, address="user0@example.com"
            )
        async with sessionmaker() as session:
            accepted = await _submit_in(
                session, credentials, sender, recipients=2, files=1, last_write=True
            )
            await session.commit()

        message, attachments, deliveries = await _stored(sessionmaker, accepted)

        assert accepted.suppressed == ["user0@example.com"]
        assert message is not None
        assert len(attachments) == 1
        assert [d.recipient for d in deliveries] == ["user1@example.com"]
