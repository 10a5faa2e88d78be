"""The route class of every front door: one transaction per request, and domain errors
rendered in the front door's own shape."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from posthouse.api.errors import ErrorRenderer, as_domain_error
from posthouse.db.outage import is_unavailable
from posthouse.errors import RequestTimeout
from posthouse.sending.accept import Answer


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except Exception as error:
        # A rollback on a connection the database dropped: there is nothing left to undo,
        # and the request's own error (or response) is what matters.
        if commit or not is_unavailable(error):
            raise
    finally:
        session.close()


async def read_body(request: Request, *, seconds: float) -> None:
    """Read the whole body (Starlette keeps it for the handler) before anything touches
    the database: a client trickling its upload then holds no transaction, no pooled
    connection and, on SQLite, not the write lock. A body that has not arrived within
    ``seconds`` is a RequestTimeout (408)."""
    try:
        async with asyncio.timeout(seconds):
            await request.body()
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {seconds:g} seconds"
        ) from None


def front_door_route(render: ErrorRenderer) -> type[APIRoute]:
    """A route class whose requests each get one session (``api.deps.SessionDep``),
    committed before the response is sent, so a 2xx means the data is durable. A domain
    error becomes ``render``'s response and rolls back whatever the request wrote; any
    other error rolls back too and propagates (a 500).

    The route class rather than a generator dependency: FastAPI runs one of those in an
    exit stack with a cancel scope per request, about 5% of the api's CPU per send.
    Commit (or rollback) and close run as one call into the synchronous session, since
    each awaited AsyncSession method starts a greenlet of its own. Shielded, so a
    cancelled request still ends its transaction and returns its connection."""

    class FrontDoorRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def in_transaction(request: Request) -> Response:
                session = request.app.state.sessionmaker()
                request.state.session = session
                ended = False
                try:
                    try:
                        await read_body(
                            request, seconds=request.app.state.settings.body_read_timeout_seconds
                        )
                        response = await handler(request)
                        # Inside the try: a commit the database fails is mapped too.
                        ended = True
                        await asyncio.shield(session.run_sync(_end, commit=True))
                    except Exception as error:
                        domain_error = as_domain_error(error)
                        if domain_error is None:
                            raise
                        response = render(domain_error)
                finally:
                    if not ended:
                        await asyncio.shield(session.run_sync(_end, commit=False))
                return response

            return in_transaction

    return FrontDoorRoute


def sessionless_route(render: ErrorRenderer) -> type[APIRoute]:
    """A route class for requests that open no session and read no body (tracking hits:
    each is one statement that commits on its own, events.repository.HitRepository).
    Domain errors, and a database that cannot be reached, become ``render``'s response;
    any other error propagates (a 500)."""

    class SessionlessRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as error:
                    domain_error = as_domain_error(error)
                    if domain_error is None:
                        raise
                    return render(domain_error)

            return answer

    return SessionlessRoute


def answer_response(answer: Answer) -> Response:
    """A send's answer as the door's JSON response: a replay says so, and the worker is
    woken once the response (and so the commit) is done."""
    return Response(
        answer.body,
        status_code=answer.status,
        media_type="application/json",
        headers={"Idempotency-Replayed": "true"} if answer.replayed else None,
        background=BackgroundTask(answer.after_commit) if answer.after_commit else None,
    )
