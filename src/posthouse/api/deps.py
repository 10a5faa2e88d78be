"""Request-scoped dependencies shared by every front door."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts import service as accounts_service
from posthouse.accounts.service import WorkspaceCredentials
from posthouse.config import Settings
from posthouse.errors import Unauthenticated


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent: a 2xx means
    the data is durable (scope="function" runs the teardown before the response)."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def get_app_settings(request: Request) -> Settings:
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
