"""Workspace keys are reused for ``auth_cache_seconds`` like sender keys, never their
secret: seed 001's door resolves its X-Api-Key through accounts' WorkspaceKeyCache."""

import pytest
from sqlalchemy import delete

from posthouse.accounts.service import WorkspaceKeyCache, authenticate_workspace_key
from posthouse.db.models import ApiKey
from posthouse.errors import Unauthenticated
from tests.dialects.emailmassivo.conftest import Account, Sessionmaker


async def test_a_cached_key_is_used_but_its_secret_is_checked_every_time(
    account: Account, sessionmaker: Sessionmaker
) -> None:
    cache = WorkspaceKeyCache(ttl=60)
    async with sessionmaker() as session:
        first = await authenticate_workspace_key(
            session, token=account.key, scope="send", cache=cache
        )
    async with sessionmaker.begin() as session:
        await session.execute(delete(ApiKey))  # the cache answers from now on

    async with sessionmaker() as session:
        again = await authenticate_workspace_key(
            session, token=account.key, scope="send", cache=cache
        )
        with pytest.raises(Unauthenticated):
            await authenticate_workspace_key(
                session, token=account.key + "x", scope="send", cache=cache
            )
        uncached = WorkspaceKeyCache(ttl=60)
        with pytest.raises(Unauthenticated):
            await authenticate_workspace_key(
                session, token=account.key, scope="send", cache=uncached
            )

    assert again is first
    assert again.workspace.name == "acme"
