"""SQL for stored templates and their versions."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import Template, TemplateVersion, Workspace


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_number(self, workspace_id: uuid.UUID) -> int:
        """The workspace's next template number. The workspace row is locked until the
        transaction ends, so two templates added at once get different numbers (SQLite's
        writers take turns anyway)."""
        await self.session.execute(
            select(Workspace.id).where(Workspace.id == workspace_id).with_for_update()
        )
        highest = await self.session.scalar(
            select(func.max(Template.number)).where(Template.workspace_id == workspace_id)
        )
        return (highest or 0) + 1

    async def add(self, *rows: Template | TemplateVersion) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def get(
        self, workspace_id: uuid.UUID, *, id: uuid.UUID | None = None, number: int | None = None
    ) -> Template | None:
        """A template of the workspace that is not deleted, by id or by number."""
        query = select(Template).where(
            Template.workspace_id == workspace_id, Template.deleted_at.is_(None)
        )
        query = query.where(Template.id == id) if id is not None else query
        query = query.where(Template.number == number) if number is not None else query
        return await self.session.scalar(query)

    async def for_workspace(self, workspace_id: uuid.UUID) -> list[Template]:
        return list(
            await self.session.scalars(
                select(Template)
                .where(Template.workspace_id == workspace_id, Template.deleted_at.is_(None))
                .order_by(Template.number)
            )
        )

    async def version_to_send(
        self,
        workspace_id: uuid.UUID,
        *,
        id: uuid.UUID | None = None,
        number: int | None = None,
        version: int | None = None,
    ) -> TemplateVersion | None:
        """One query: the version (by default the published one) of a template of the
        workspace that is not deleted, by id or by number."""
        query = (
            select(TemplateVersion)
            .join(Template, TemplateVersion.template_id == Template.id)
            .where(Template.workspace_id == workspace_id, Template.deleted_at.is_(None))
            .where(
                TemplateVersion.version == version
                if version is not None
                else TemplateVersion.version == Template.published_version
            )
        )
        query = query.where(Template.id == id) if id is not None else query
        query = query.where(Template.number == number) if number is not None else query
        return await self.session.scalar(query)

    async def version(self, template_id: uuid.UUID, number: int) -> TemplateVersion | None:
        return await self.session.scalar(
            select(TemplateVersion).where(
                TemplateVersion.template_id == template_id, TemplateVersion.version == number
            )
        )

    async def version_numbers(self, template_id: uuid.UUID) -> list[int]:
        return list(
            await self.session.scalars(
                select(TemplateVersion.version)
                .where(TemplateVersion.template_id == template_id)
                .order_by(TemplateVersion.version)
            )
        )
