"""SQL for sending domains, their DKIM keys and the DNS records to publish."""

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import DkimKey, Domain, DomainRecord


class DomainRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, workspace_id: uuid.UUID, name: str) -> Domain | None:
        return await self.session.scalar(
            select(Domain).where(Domain.workspace_id == workspace_id, Domain.name == name)
        )

    async def send_domains(
        self, workspace_id: uuid.UUID, names: Iterable[str]
    ) -> list[tuple[Domain, bool]]:
        """The workspace's domains named by ``names`` (as a domain or as its return-path
        domain), each with whether it has an active DKIM key."""
        wanted = list(names)
        rows = await self.session.execute(
            select(Domain, DkimKey.id)
            .outerjoin(DkimKey, (DkimKey.domain_id == Domain.id) & DkimKey.active.is_(True))
            .where(
                Domain.workspace_id == workspace_id,
                or_(Domain.name.in_(wanted), Domain.return_path_domain.in_(wanted)),
            )
        )
        return [(domain, key_id is not None) for domain, key_id in rows]

    async def by_name(self, name: str) -> list[Domain]:
        return list(await self.session.scalars(select(Domain).where(Domain.name == name)))

    async def for_workspace(self, workspace_id: uuid.UUID) -> list[Domain]:
        return list(
            await self.session.scalars(
                select(Domain).where(Domain.workspace_id == workspace_id).order_by(Domain.name)
            )
        )

    async def is_verified(self, workspace_id: uuid.UUID, name: str) -> bool:
        found = await self.session.scalar(
            select(Domain.id).where(
                Domain.workspace_id == workspace_id,
                Domain.name == name,
                Domain.verified_at.is_not(None),
            )
        )
        return found is not None

    async def records(self, domain_id: uuid.UUID) -> list[DomainRecord]:
        return list(
            await self.session.scalars(
                select(DomainRecord)
                .where(DomainRecord.domain_id == domain_id)
                .order_by(DomainRecord.purpose, DomainRecord.name)
            )
        )

    async def keys(self, domain_id: uuid.UUID) -> list[DkimKey]:
        return list(
            await self.session.scalars(
                select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(DkimKey.created_at)
            )
        )

    async def with_active_keys(
        self, pairs: Iterable[tuple[uuid.UUID, str]]
    ) -> list[tuple[Domain, DkimKey | None]]:
        """Domains named by (workspace id, name), each with its active key if any."""
        wanted = list(pairs)
        if not wanted:
            return []
        rows = await self.session.execute(
            select(Domain, DkimKey)
            .outerjoin(DkimKey, (DkimKey.domain_id == Domain.id) & DkimKey.active.is_(True))
            .where(tuple_(Domain.workspace_id, Domain.name).in_(wanted))
        )
        return [(domain, key) for domain, key in rows]

    async def claim_due_checks(
        self, *, now: datetime, before: datetime, limit: int
    ) -> list[Domain]:
        """Domains not checked since ``before``, marked checked now so another worker's
        re-check skips them; PostgreSQL skips rows another claim holds."""
        domains = list(
            await self.session.scalars(
                select(Domain)
                .where(or_(Domain.last_checked_at.is_(None), Domain.last_checked_at < before))
                .order_by(Domain.last_checked_at.asc().nulls_first())
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for domain in domains:
            domain.last_checked_at = now
        await self.session.flush()
        return domains

    async def add(self, *rows: Domain | DkimKey | DomainRecord) -> None:
        self.session.add_all(rows)
        await self.session.flush()
