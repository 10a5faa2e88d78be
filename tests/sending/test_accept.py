"""The accept path (sending.accept) as any front door calls it: callers, the content step,
idempotency, and the worker's wake-up after the commit."""

import dataclasses

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.accounts.repository import AccountRepository
from posthouse.db.models import Message, Workspace
from posthouse.errors import MessageNotFound, SenderNotFound, ValidationFailed
from posthouse.sending import accept as accept_path
from posthouse.sending import service as sending_service
from posthouse.sending.accept import AcceptContext, IdempotencyKey
from posthouse.sending.ids import reference_id
from posthouse.sending.schemas import Caller, SendRequest
from posthouse.sending.service import Accepted, SubmitOptions
from tests.conftest import SenderTokens, make_sender
from tests.helpers import count

Sessionmaker = async_sessionmaker[AsyncSession]


def _request(sender: str, **fields: object) -> SendRequest:
    values: dict[str, object] = {
        "sender": sender,
        "to": ["alice@example.com"],
        "subject": "Your order",
        "html": "<p>Thanks</p>",
    }
    return SendRequest(**{**values, **fields})  # type: ignore[arg-type]


async def _workspace_caller(session: AsyncSession, name: str = "acme") -> Caller:
    workspace = await AccountRepository(session).workspace_by_name(name)
    assert workspace is not None
    return Caller(workspace)


async def _send(
    session: AsyncSession, context: AcceptContext, caller: Caller, request: SendRequest
) -> accept_path.Answer:
    async def action(options: SubmitOptions) -> tuple[Accepted, str]:
        accepted = await sending_service.submit(
            session, caller=caller, request=request, options=options
        )
        return accepted, accepted.message.subject

    return await accept_path.accept(session, context, caller=caller, api="test", action=action)


class TemplateStep:
    """A content step standing in for templates: fills the subject and the body in."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    async def prepare(
        self, session: AsyncSession, *, caller: Caller, request: SendRequest
    ) -> SendRequest:
        return dataclasses.replace(request, subject=self.subject, html="<p>rendered</p>")


@pytest.fixture
def context(app: FastAPI) -> AcceptContext:
    context: AcceptContext = app.state.accept
    return context


class TestCaller:
    async def test_a_workspace_caller_sends_as_any_sender_of_its_workspace(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        other = await make_sender(sessionmaker, "billing@yourstore.example")
        async with sessionmaker.begin() as session:
            caller = await _workspace_caller(session)
            await _send(session, context, caller, _request(sender.email))
            await _send(session, context, caller, _request(other.email))

        async with sessionmaker() as session:
            senders = (await session.scalars(select(Message.from_email))).all()
        assert sorted(senders) == ["billing@yourstore.example", "no-reply@yourstore.example"]

    async def test_a_workspace_caller_cannot_send_as_another_workspaces_sender(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        theirs = await make_sender(sessionmaker, "hello@other.example", workspace="other")
        async with sessionmaker() as session:
            caller = await _workspace_caller(session)
            for address in (theirs.email, "nobody@yourstore.example"):
                with pytest.raises(SenderNotFound):
                    await _send(session, context, caller, _request(address))
        assert await count(sessionmaker, Message) == 0

    async def test_a_bound_caller_sends_only_as_its_sender(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        await make_sender(sessionmaker, "billing@yourstore.example")
        async with sessionmaker() as session:
            workspace = await _workspace_caller(session)
            bound = await AccountRepository(session).sender(
                workspace.workspace.id, "no-reply@yourstore.example"
            )
            caller = Caller(workspace.workspace, bound)
            with pytest.raises(SenderNotFound):
                await _send(session, context, caller, _request("billing@yourstore.example"))

    async def test_a_message_of_another_workspace_is_not_found_for_a_workspace_caller(
        self, sessionmaker: Sessionmaker, context: AcceptContext
    ) -> None:
        theirs = await make_sender(sessionmaker, "hello@other.example", workspace="other")
        async with sessionmaker.begin() as session:
            caller = await _workspace_caller(session, "other")
            answer = await _send(session, context, caller, _request(theirs.email))
            assert answer.body == "Your order"
            message_id = (await session.scalars(select(Message.id))).one()
        await make_sender(sessionmaker, "no-reply@yourstore.example")
        async with sessionmaker() as session:
            mine = await _workspace_caller(session)
            reference = reference_id(message_id)
            with pytest.raises(MessageNotFound):
                await sending_service.get_message(session, caller=mine, reference_id=reference)
            found, _ = await sending_service.get_message(
                session, caller=caller, reference_id=reference
            )
            assert found.id == message_id


class TestContentStep:
    async def test_the_content_step_runs_before_validation(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        templated = dataclasses.replace(context, content=TemplateStep("Rendered subject"))
        async with sessionmaker.begin() as session:
            caller = await _workspace_caller(session)
            answer = await _send(session, templated, caller, _request(sender.email, subject=None))
        assert answer.body == "Rendered subject"
        async with sessionmaker() as session:
            message = (await session.scalars(select(Message))).one()
        assert (message.subject, message.html) == ("Rendered subject", "<p>rendered</p>")

    async def test_what_the_content_step_produces_is_validated(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        templated = dataclasses.replace(context, content=TemplateStep("Hi\r\nBcc: x@evil.test"))
        async with sessionmaker() as session:
            caller = await _workspace_caller(session)
            with pytest.raises(ValidationFailed) as refused:
                await _send(session, templated, caller, _request(sender.email))
        assert refused.value.field == "subject"
        assert await count(sessionmaker, Message) == 0


class TestIdempotencyAndWakeUp:
    async def test_a_key_replays_the_stored_answer_and_wakes_nobody(
        self, sessionmaker: Sessionmaker, context: AcceptContext, sender: SenderTokens
    ) -> None:
        woken: list[int] = []
        waking = dataclasses.replace(context, wake_worker=lambda: woken.append(1))
        key = IdempotencyKey("order-1", accept_path.request_fingerprint("POST", "/x", "", {}))

        async def once() -> accept_path.Answer:
            async with sessionmaker.begin() as session:
                caller = await _workspace_caller(session)

                async def action(options: SubmitOptions) -> tuple[Accepted, str]:
                    accepted = await sending_service.submit(
                        session, caller=caller, request=_request(sender.email), options=options
                    )
                    return accepted, '{"sent": true}'

                return await accept_path.accept(
                    session, waking, caller=caller, api="test", action=action, key=key
                )

        answers = [await once(), await once()]
        first, again = answers
        assert (first.replayed, again.replayed) == (False, True)
        assert first.body == again.body == '{"sent": true}'
        assert again.after_commit is None
        assert first.after_commit is not None
        first.after_commit()
        assert woken == [1]
        assert await count(sessionmaker, Message) == 1
        assert await count(sessionmaker, Workspace) == 1
