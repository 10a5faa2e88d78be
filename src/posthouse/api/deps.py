"""Request-scoped dependencies shared by every front door."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.accounts import service as accounts_service
from posthouse.accounts.service import WorkspaceCredentials
from posthouse.config import Settings
from posthouse.errors import Unauthenticated


async def get_session(request: Request) -> AsyncSession:
    """The request's session, which its route class (api.routing.front_door_route) opened
    and commits before the response is sent."""
    session: AsyncSession = request.state.session
    return session


async def get_app_settings(request: Request) -> Settings:
    # async: FastAPI would run a plain def in a thread pool, a thread hop per request.
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    """The app's engine, for routes that open no session (api.routing.sessionless_route)."""
    engine: AsyncEngine = request.app.state.engine
    return engine


SessionDep = Annotated[AsyncSession, Depends(get_session)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
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
