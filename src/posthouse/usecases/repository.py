"""SQL for use cases."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import Domain, Sender, UseCase


class UseCaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, use_case: UseCase) -> None:
        self.session.add(use_case)
        await self.session.flush()

    async def by_name(self, workspace_id: uuid.UUID, name: str) -> UseCase | None:
        return await self.session.scalar(
            select(UseCase).where(UseCase.workspace_id == workspace_id, UseCase.name == name)
        )

    async def by_id(self, workspace_id: uuid.UUID, use_case_id: uuid.UUID | None) -> UseCase | None:
        if use_case_id is None:
            return None
        return await self.session.scalar(
            select(UseCase).where(UseCase.workspace_id == workspace_id, UseCase.id == use_case_id)
        )

    async def for_workspace(self, workspace_id: uuid.UUID) -> list[UseCase]:
        rows = await self.session.scalars(
            select(UseCase).where(UseCase.workspace_id == workspace_id).order_by(UseCase.name)
        )
        return list(rows)

    async def with_sender(
        self, workspace_id: uuid.UUID, use_case_id: uuid.UUID
    ) -> tuple[UseCase, Sender, Domain] | None:
        """The workspace's use case with the sender it sends through and its domain."""
        row = (
            await self.session.execute(
                select(UseCase, Sender, Domain)
                .join(Sender, Sender.id == UseCase.sender_id)
                .join(Domain, Domain.id == UseCase.domain_id)
                .where(UseCase.id == use_case_id, UseCase.workspace_id == workspace_id)
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    async def in_workspace(
        self, workspace_id: uuid.UUID, ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, UseCase]:
        if not ids:
            return {}
        rows = await self.session.scalars(
            select(UseCase).where(UseCase.workspace_id == workspace_id, UseCase.id.in_(ids))
        )
        return {use_case.id: use_case for use_case in rows}
