"""Request-scoped dependencies shared by every front door."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from posthouse.accounts import service as accounts_service
from posthouse.accounts.service import WorkspaceCredentials
from posthouse.config import Settings
from posthouse.errors import Unauthenticated


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent: a 2xx means
    the data is durable (scope="function" runs the teardown before the response).

    A domain error is turned into a response inside the route (api.errors), so it never
    reaches this teardown as an exception; the route marks the request failed instead,
    and whatever the request wrote before the error is rolled back.

    Commit (or rollback) and close run as one call into the synchronous session, since
    each awaited AsyncSession method starts a greenlet of its own. Shielded, so a
    cancelled request still ends its transaction and returns its connection."""
    session = request.app.state.sessionmaker()
    # Where protections make their side writes (protections.side).
    session.info["side_engine"] = request.app.state.side_engine
    try:
        yield session
    except BaseException:
        await asyncio.shield(session.run_sync(_end, commit=False))
        raise
    failed = getattr(request.state, "failed", False)
    await asyncio.shield(session.run_sync(_end, commit=not failed))


async def get_app_settings(request: Request) -> Settings:
    # async: FastAPI would run a plain def in a thread pool, a thread hop per request.
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def workspace_key(scope: str) -> Callable[..., Awaitable[WorkspaceCredentials]]:
    """Dependency: a workspace key with ``scope`` from ``Authorization: Bearer phk_...``."""

    async def dependency(
        session: SessionDep, authorization: Annotated[str | None, Header()] = None
    ) -> WorkspaceCredentials:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization: Bearer <workspace key> is required")
        return await accounts_service.authenticate_workspace_key(
            session, token=token.strip(), scope=scope
        )

    return dependency


AdminDep = Annotated[WorkspaceCredentials, Depends(workspace_key("admin"))]
