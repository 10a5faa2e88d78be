"""SQL for the suppression list: the active suppressions a send and the worker check,
and the list an admin manages."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, Uuid, any_, bindparam, delete, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db import dialect
from posthouse.db.models import WORKSPACE_SCOPE, Suppression, UseCase

# Built once: this runs on every send, and building the statement each time cost
# about a sixth of its 0.8 ms. A Core select skips the ORM's result machinery too.
_suppression = dialect.table_of(Suppression)
_ACTIVE = or_(_suppression.c.expires_at.is_(None), _suppression.c.expires_at > bindparam("b_now"))
# Entries for the whole workspace and for the send's use case (WORKSPACE_SCOPE again
# when it has none); an address may have both, so the addresses are distinct.
_IN_SCOPE = _suppression.c.scope_id.in_(
    [bindparam("b_everywhere", type_=Uuid()), bindparam("b_scope", type_=Uuid())]
)
ACTIVE_SUPPRESSIONS = (
    select(_suppression.c.address)
    .where(
        _suppression.c.workspace_id == bindparam("b_workspace"),
        _suppression.c.address.in_(bindparam("b_addresses", expanding=True)),
        _IN_SCOPE,
        _ACTIVE,
    )
    .distinct()
)
# PostgreSQL only: the addresses as one array parameter. An expanding IN makes SQLAlchemy
# re-render the whole statement on every execution: in the combined insert that embeds
# this, about 3% of the api's instructions per send. TEXT[], not VARCHAR[]: asyncpg has a
# codec for text[] built in, but looks varchar[] up in the catalogue on every new
# connection (14 ms, most of it the server's).
ACTIVE_SUPPRESSIONS_PG = (
    select(_suppression.c.address)
    .where(
        _suppression.c.workspace_id == bindparam("b_workspace"),
        _suppression.c.address == any_(bindparam("b_addresses", type_=postgresql.ARRAY(Text))),
        _IN_SCOPE,
        _ACTIVE,
    )
    .distinct()
)


def suppression_parameters(
    workspace_id: uuid.UUID,
    addresses: Sequence[str],
    *,
    use_case_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of ACTIVE_SUPPRESSIONS, for statements that embed it."""
    return {
        "b_workspace": workspace_id,
        "b_addresses": list(addresses),
        "b_everywhere": WORKSPACE_SCOPE,
        "b_scope": use_case_id or WORKSPACE_SCOPE,
        "b_now": now,
    }


_UNIQUE = ["workspace_id", "address", "scope_id"]


class SuppressionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_among(
        self,
        workspace_id: uuid.UUID,
        addresses: Sequence[str],
        *,
        use_case_id: uuid.UUID | None,
        now: datetime,
    ) -> set[str]:
        if not addresses:
            return set()
        rows = await self.session.scalars(
            ACTIVE_SUPPRESSIONS,
            suppression_parameters(workspace_id, addresses, use_case_id=use_case_id, now=now),
        )
        return set(rows)

    async def active_entries(
        self, workspace_ids: Iterable[uuid.UUID], addresses: Iterable[str], *, now: datetime
    ) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        """(workspace, scope, address) of every active entry of these workspaces and
        addresses, in one query."""
        rows = await self.session.execute(
            select(Suppression.workspace_id, Suppression.scope_id, Suppression.address).where(
                Suppression.workspace_id.in_(set(workspace_ids)),
                Suppression.address.in_(set(addresses)),
                or_(Suppression.expires_at.is_(None), Suppression.expires_at > now),
            )
        )
        return {(w, s, a) for w, s, a in rows}

    async def use_case_exists(self, workspace_id: uuid.UUID, use_case_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(UseCase.id).where(
                UseCase.id == use_case_id, UseCase.workspace_id == workspace_id
            )
        )
        return found is not None

    async def upsert(self, rows: list[dict[str, Any]], *, replace: bool) -> None:
        """Add entries; an existing entry for the address is replaced only when ``replace``
        (an operator's add), never by an automatic one (the first cause is kept)."""
        if not rows:
            return
        statement = dialect.insert(dialect.name_of(self.session), Suppression)
        if replace:
            statement = statement.on_conflict_do_update(
                index_elements=_UNIQUE,
                set_={
                    "reason": statement.excluded.reason,
                    "expires_at": statement.excluded.expires_at,
                    "source_event_id": statement.excluded.source_event_id,
                    "created_by": statement.excluded.created_by,
                    "created_at": statement.excluded.created_at,
                },
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=_UNIQUE)
        await self.session.execute(statement, rows)

    async def active_reasons(
        self,
        workspace_id: uuid.UUID,
        addresses: Sequence[str],
        *,
        use_case_id: uuid.UUID | None,
        now: datetime,
    ) -> dict[str, str]:
        """The reason of each of ``addresses`` (canonical forms) suppressed now for a send
        through ``use_case_id`` (or none): a workspace-wide entry's first."""
        if not addresses:
            return {}
        rows = await self.session.execute(
            select(_suppression.c.address, _suppression.c.reason, _suppression.c.scope_id).where(
                _suppression.c.workspace_id == workspace_id,
                _suppression.c.address.in_(list(addresses)),
                _suppression.c.scope_id.in_([WORKSPACE_SCOPE, use_case_id or WORKSPACE_SCOPE]),
                or_(_suppression.c.expires_at.is_(None), _suppression.c.expires_at > now),
            )
        )
        reasons: dict[str, str] = {}
        for row in sorted(rows, key=lambda row: row.scope_id != WORKSPACE_SCOPE):
            reasons.setdefault(str(row.address), str(row.reason))
        return reasons

    async def get(
        self, workspace_id: uuid.UUID, address: str, scope_id: uuid.UUID = WORKSPACE_SCOPE
    ) -> Suppression | None:
        return await self.session.scalar(
            select(Suppression).where(
                Suppression.workspace_id == workspace_id,
                Suppression.address == address,
                Suppression.scope_id == scope_id,
            )
        )

    async def remove(
        self, workspace_id: uuid.UUID, address: str, scope_id: uuid.UUID = WORKSPACE_SCOPE
    ) -> bool:
        result = await self.session.execute(
            delete(Suppression).where(
                Suppression.workspace_id == workspace_id,
                Suppression.address == address,
                Suppression.scope_id == scope_id,
            )
        )
        return bool(dialect.rowcount(result))

    async def page(
        self,
        workspace_id: uuid.UUID,
        *,
        reason: str | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[Suppression]:
        query = select(Suppression).where(Suppression.workspace_id == workspace_id)
        if reason is not None:
            query = query.where(Suppression.reason == reason)
        if after is not None:
            query = query.where(Suppression.id > after)
        rows = await self.session.scalars(query.order_by(Suppression.id).limit(limit))
        return list(rows)
