"""MessageRepository.add: a message, its files and its queue rows, stored whole.

On PostgreSQL a send with few rows is one combined statement and a larger one several;
both shapes must store exactly what was accepted. A combined statement that is the
request's last write runs autocommitted, and its connection must go back to the pool
transactional.
"""

import uuid

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.service import authenticate_sender
from posthouse.db.engine import create_engine, create_sessionmaker
from posthouse.db.models import Attachment, Delivery, DeliveryStatus, Message, UseCase
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

    async def test_use_case_scoped_entries_cost_no_statement_of_their_own(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        database_url: str,
        sender: SenderTokens,
    ) -> None:
        # user0 is suppressed for the whole workspace and for the use case (two entries,
        # one suppressed recipient), user1 for another use case only, user2 not at all.
        credentials = await _credentials(sessionmaker, sender)
        news = UseCase(id=uuid.uuid4(), name="news", type="marketing")
        workspace_id = credentials.workspace.id
        async with sessionmaker.begin() as session:
            await suppression.add_automatic(
                session,
                entries=[
                    suppression.AutomaticEntry(workspace_id, address, reason, None, use_case)
                    for address, use_case in (
                        ("user0@example.com", None),
                        ("user0@example.com", news.id),
                        ("user1@example.com", uuid.uuid4()),
                    )
                    for reason in [suppression.SuppressionReason.UNSUBSCRIBE]
                ],
            )
        engine = create_engine(database_url, pool_size=1)
        statements: list[str] = []
        event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda _c, _cur, sql, *_: statements.append(sql),
        )
        try:
            async with create_sessionmaker(engine)() as session:
                await session.connection()  # BEGIN is not the accept path's to count
                statements.clear()
                accepted = await sending_service.submit(
                    session,
                    caller=credentials,
                    request=_request(sender, recipients=3, files=1),
                    options=SubmitOptions(require_verified_domain=False, use_case=news),
                )
                counted = len(statements)
                await session.commit()
        finally:
            await engine.dispose()

        _, _, deliveries = await _stored(sessionmaker, accepted)
        assert accepted.suppressed == ["user0@example.com"]
        assert [d.recipient for d in deliveries] == ["user1@example.com", "user2@example.com"]
        # PostgreSQL: the one combined insert, as without scopes. SQLite: the suppression
        # check, then the message, its file and its deliveries.
        assert counted == (1 if database_url.startswith("postgresql") else 4)
