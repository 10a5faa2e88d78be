"""The suppression list: addresses a workspace never sends to.

Hard bounces and complaints add entries automatically (events.service.ingest); operators
add and remove them through the admin API and the CLI. submit() leaves suppressed
recipients out, and the worker re-checks at send time (screening.py).

An entry applies to all of the workspace's mail, or only to one use case's (an
unsubscribe from mail sent through it): ``scope_id`` is WORKSPACE_SCOPE or the use case.
A send is refused by both kinds: the workspace's and its own use case's.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession
from ulid import ULID

from posthouse.addresses import address_key, normalize_email
from posthouse.db.base import new_id, utcnow
from posthouse.db.models import WORKSPACE_SCOPE, Suppression
from posthouse.errors import NotFound, UseCaseNotFound, ValidationFailed
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
    use_case_id: uuid.UUID | None = None  # None: the whole workspace


def parse_use_case(value: str | None) -> uuid.UUID | None:
    """The use case an operator names for an entry; None: the whole workspace."""
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed("use_case_id must be a UUID", field="use_case_id") from None


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


Recipient = tuple[uuid.UUID, uuid.UUID | None, str]  # workspace, use case or None, address


async def active_among(
    session: AsyncSession, *, recipients: set[Recipient], now: datetime
) -> set[Recipient]:
    """The recipients (workspace, use case the mail goes through, address) among
    ``recipients`` that must not be sent to now, as given: an entry for the whole
    workspace or for that use case, matched by the address's canonical form."""
    if not recipients:
        return set()
    found = await SuppressionRepository(session).active_entries(
        {w for w, _, _ in recipients}, {address_key(a) for _, _, a in recipients}, now=now
    )
    return {
        (w, u, a)
        for w, u, a in recipients
        if (w, WORKSPACE_SCOPE, address_key(a)) in found
        or (u is not None and (w, u, address_key(a)) in found)
    }


async def _scope(
    repository: SuppressionRepository, workspace_id: uuid.UUID, use_case_id: uuid.UUID | None
) -> uuid.UUID:
    """The scope_id for an operator's request: the workspace, or one of its use cases
    (another workspace's is not found, like one that does not exist)."""
    if use_case_id is None:
        return WORKSPACE_SCOPE
    if not await repository.use_case_exists(workspace_id, use_case_id):
        raise UseCaseNotFound("use case not found")
    return use_case_id


async def reasons(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    addresses: list[str],
    use_case_id: uuid.UUID | None = None,
) -> dict[str, SuppressionReason]:
    """Why each of ``addresses`` (as given) is suppressed now for a send through
    ``use_case_id`` (or none); those that are not are left out. For a front door that
    words each reason its own way."""
    keys = {address: address_key(address) for address in addresses}
    found = await SuppressionRepository(session).active_reasons(
        workspace_id, sorted(set(keys.values())), use_case_id=use_case_id, now=utcnow()
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
    use_case_id: uuid.UUID | None = None,
) -> Suppression:
    """Add (or replace) an operator's entry, for the whole workspace or one use case."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationFailed("expires_at must carry a timezone", field="expires_at")
    normal = normalize(address)
    repository = SuppressionRepository(session)
    scope_id = await _scope(repository, workspace_id, use_case_id)
    await repository.upsert(
        [
            {
                "id": new_id(),
                "created_at": utcnow(),
                "workspace_id": workspace_id,
                "address": normal,
                "scope_id": scope_id,
                "reason": str(reason),
                "expires_at": expires_at,
                "source_event_id": None,
                "created_by": created_by,
            }
        ],
        replace=True,
    )
    entry = await repository.get(workspace_id, normal, scope_id)
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
                "scope_id": e.use_case_id or WORKSPACE_SCOPE,
                "reason": str(e.reason),
                "expires_at": None,
                "source_event_id": e.source_event_id,
                "created_by": None,
            }
            for e in entries
        ],
        replace=False,
    )


async def remove(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    address: str,
    use_case_id: uuid.UUID | None = None,
) -> None:
    """Remove the workspace-wide entry, or with ``use_case_id`` that use case's."""
    normal = normalize(address)
    repository = SuppressionRepository(session)
    scope_id = await _scope(repository, workspace_id, use_case_id)
    if not await repository.remove(workspace_id, normal, scope_id):
        raise NotFound(f"{normal} is not on the suppression list")


async def get(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    address: str,
    use_case_id: uuid.UUID | None = None,
) -> Suppression:
    """The workspace-wide entry, or with ``use_case_id`` that use case's."""
    normal = normalize(address)
    repository = SuppressionRepository(session)
    entry = await repository.get(
        workspace_id, normal, await _scope(repository, workspace_id, use_case_id)
    )
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
