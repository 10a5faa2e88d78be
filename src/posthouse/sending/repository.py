"""SQL for messages, their attachments and deliveries."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from posthouse.db.models import Attachment, Delivery, Message


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, message: Message, attachments: list[Attachment], deliveries: list[Delivery]
    ) -> None:
        self.session.add(message)
        # No ORM relationships, so the unit of work would not order these inserts itself.
        await self.session.flush()
        self.session.add_all(attachments)
        self.session.add_all(deliveries)
        await self.session.flush()

    async def get(self, message_id: uuid.UUID, *, workspace_id: uuid.UUID) -> Message | None:
        return await self.session.scalar(
            select(Message).where(Message.id == message_id, Message.workspace_id == workspace_id)
        )

    async def latest_by_subject(self, *, sender_id: uuid.UUID, subject_key: str) -> Message | None:
        return await self.session.scalar(
            select(Message)
            .where(Message.sender_id == sender_id, Message.subject_key == subject_key)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )

    async def deliveries(self, message_id: uuid.UUID) -> list[Delivery]:
        rows = await self.session.scalars(
            select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)
        )
        return list(rows)

    async def attachments_without_data(self, message_id: uuid.UUID) -> list[Attachment]:
        rows = await self.session.scalars(
            select(Attachment)
            .options(defer(Attachment.data, raiseload=True))
            .where(Attachment.message_id == message_id)
            .order_by(Attachment.position)
        )
        return list(rows)
