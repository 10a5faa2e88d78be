"""SQL for workspaces, senders and keys."""

import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import ApiKey, Sender, Workspace

_KEY_WITH_OWNER = (
    select(ApiKey, Sender, Workspace)
    .join(Workspace, Workspace.id == ApiKey.workspace_id)
    .outerjoin(Sender, Sender.id == ApiKey.sender_id)
    .where(ApiKey.lookup_hash == bindparam("lookup_hash"), ApiKey.revoked_at.is_(None))
)


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def workspace_by_name(self, name: str) -> Workspace | None:
        return await self.session.scalar(select(Workspace).where(Workspace.name == name))

    async def workspace(self, workspace_id: uuid.UUID) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def sender(self, workspace_id: uuid.UUID, email: str) -> Sender | None:
        return await self.session.scalar(
            select(Sender).where(Sender.workspace_id == workspace_id, Sender.email == email)
        )

    async def address_senders(self, workspace_id: uuid.UUID, *, limit: int) -> list[str]:
        """Up to ``limit`` of the workspace's single-address senders (not ``@domain``)."""
        rows = await self.session.scalars(
            select(Sender.email)
            .where(Sender.workspace_id == workspace_id, Sender.email.not_like("@%"))
            .order_by(Sender.email)
            .limit(limit)
        )
        return list(rows)

    async def key_with_owner(
        self, lookup_hash: str
    ) -> tuple[ApiKey, Sender | None, Workspace] | None:
        """An unrevoked key with its sender (None for a workspace key) and its workspace,
        in one round trip: this runs on every API request."""
        row = (await self.session.execute(_KEY_WITH_OWNER, {"lookup_hash": lookup_hash})).first()
        return None if row is None else (row[0], row[1], row[2])

    async def add(self, *rows: Workspace | Sender | ApiKey) -> None:
        self.session.add_all(rows)
        await self.session.flush()
