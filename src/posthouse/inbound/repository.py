"""SQL for inbound reports: finding the delivery a report is about, keeping the report."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.models import Delivery, Domain, InboundReport, Message


class InboundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def is_return_path_domain(self, domain: str) -> bool:
        found = await self.session.scalar(
            select(Domain.id).where(Domain.return_path_domain == domain.lower()).limit(1)
        )
        return found is not None

    async def delivery(self, delivery_id: uuid.UUID) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def deliveries_of(self, message_id_header: str) -> list[Delivery]:
        rows = await self.session.scalars(
            select(Delivery)
            .join(Message, Message.id == Delivery.message_id)
            .where(Message.message_id_header == message_id_header)
            .order_by(Delivery.id)
        )
        return list(rows)

    async def report_by_digest(self, digest: str) -> InboundReport | None:
        return await self.session.scalar(
            select(InboundReport).where(InboundReport.digest == digest).limit(1)
        )

    async def add_report(self, report: InboundReport) -> None:
        self.session.add(report)
        await self.session.flush()
