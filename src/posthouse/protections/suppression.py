"""The suppression list: addresses a workspace never sends to.

Hard bounces and complaints add entries automatically (events.service.ingest); operators
add and remove them through the admin API and the CLI. submit() leaves suppressed
recipients out, and the worker re-checks at send time (screening.py).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession
from ulid import ULID

from posthouse.addresses import address_key, normalize_email
from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Suppression
from posthouse.errors import NotFound, ValidationFailed
from posthouse.protections.repositories.suppression import (
    SuppressionRepository,
)


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


@dataclass(frozen=True)
class AutomaticEntry:
    workspace_id: uuid.UUID
    address: str
    reason: SuppressionReason
    source_event_id: uuid.UUID | None


@dataclass(frozen=True)
class SuppressionPage:
    entries: list[Suppression]
    next_cursor: str | None


def normalize(address: str) -> str:
    """The form stored and matched: the canonical form of every address comparison
    (posthouse.addresses.address_key), so ``Victim@`` and ``victim@`` are one entry."""
    try:
        return address_key(normalize_email(address.strip()))
    except ValidationFailed as error:
        raise ValidationFailed(error.detail, field="address") from None


def parse_reason(value: str) -> SuppressionReason:
    try:
        return SuppressionReason(value)
    except ValueError:
        known = ", ".join(r.value for r in SuppressionReason)
        raise ValidationFailed(f"reason must be one of {known}", field="reason") from None


async def active_pairs(
    session: AsyncSession, *, pairs: set[tuple[uuid.UUID, str]], now: datetime
) -> set[tuple[uuid.UUID, str]]:
    """The (workspace, address) pairs among ``pairs`` that must not be sent to now, as
    given: matched by the addresses' canonical form."""
    keys = {(workspace_id, address_key(address)) for workspace_id, address in pairs}
    found = await SuppressionRepository(session).active_pairs(keys, now=now)
    return {(w, a) for w, a in pairs if (w, address_key(a)) in found}


async def reasons(
    session: AsyncSession, *, workspace_id: uuid.UUID, addresses: list[str]
) -> dict[str, SuppressionReason]:
    """Why each of ``addresses`` (as given) is suppressed now; those that are not are left
    out. For a front door that words each reason its own way."""
    keys = {address: address_key(address) for address in addresses}
    found = await SuppressionRepository(session).active_reasons(
        workspace_id, sorted(set(keys.values())), now=utcnow()
    )
    return {address: SuppressionReason(found[key]) for address, key in keys.items() if key in found}


async def add(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    address: str,
    reason: SuppressionReason = SuppressionReason.MANUAL,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> Suppression:
    """Add (or replace) an operator's entry."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationFailed("expires_at must carry a timezone", field="expires_at")
    normal = normalize(address)
    repository = SuppressionRepository(session)
    await repository.upsert(
        [
            {
                "id": new_id(),
                "created_at": utcnow(),
                "workspace_id": workspace_id,
                "address": normal,
                "reason": str(reason),
                "expires_at": expires_at,
                "source_event_id": None,
                "created_by": created_by,
            }
        ],
        replace=True,
    )
    entry = await repository.get(workspace_id, normal)
    assert entry is not None
    await session.refresh(entry)
    return entry


async def add_automatic(session: AsyncSession, *, entries: list[AutomaticEntry]) -> None:
    """Entries caused by events. An address already listed keeps its first cause."""
    now = utcnow()
    await SuppressionRepository(session).upsert(
        [
            {
                "id": new_id(),
                "created_at": now,
                "workspace_id": e.workspace_id,
                "address": e.address,
                "reason": str(e.reason),
                "expires_at": None,
                "source_event_id": e.source_event_id,
                "created_by": None,
            }
            for e in entries
        ],
        replace=False,
    )


async def remove(session: AsyncSession, *, workspace_id: uuid.UUID, address: str) -> None:
    normal = normalize(address)
    if not await SuppressionRepository(session).remove(workspace_id, normal):
        raise NotFound(f"{normal} is not on the suppression list")


async def get(session: AsyncSession, *, workspace_id: uuid.UUID, address: str) -> Suppression:
    normal = normalize(address)
    entry = await SuppressionRepository(session).get(workspace_id, normal)
    if entry is None:
        raise NotFound(f"{normal} is not on the suppression list")
    return entry


async def list_page(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    reason: SuppressionReason | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> SuppressionPage:
    """Entries oldest first, ``limit`` at a time; ``next_cursor`` continues the list."""
    if not 1 <= limit <= 1000:
        raise ValidationFailed("limit must be between 1 and 1000", field="limit")
    after = None
    if cursor:
        try:
            after = ULID.from_str(cursor).to_uuid()
        except ValueError:
            raise ValidationFailed("invalid cursor", field="cursor") from None
    rows = await SuppressionRepository(session).page(
        workspace_id, reason=str(reason) if reason else None, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(ULID.from_uuid(rows[-1].id)) if more else None
    return SuppressionPage(rows, next_cursor)
