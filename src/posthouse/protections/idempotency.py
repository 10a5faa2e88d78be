"""Idempotency keys, and seed 001's automatic duplicate detection.

A key is claimed by a write that commits at once (a side write, protections.side), so a
concurrent request with the same key sees it in flight (409 + Retry-After) instead of
sending again. The response is stored in the request's own transaction, atomically with the
accepted message, so a committed send always has its stored response. A request that
fails gives its claim back, so a rejected request never keeps the key.

Keys belong to the caller that used them (``owner``: the sender a token pair is bound
to): another sender's tokens in the same workspace neither replay nor see them.
"""

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Message
from posthouse.errors import IdempotencyConflict, IdempotencyInFlight, ValidationFailed
from posthouse.protections import side
from posthouse.protections.repositories.idempotency import (
    DuplicateRepository,
    IdempotencyRepository,
)

KEY_LIFETIME = timedelta(hours=24)
# A claim that was never completed nor given back (its process died between commit and
# answer) is taken over after this long.
ABANDONED_CLAIM = timedelta(minutes=5)
DUPLICATE_WINDOW = timedelta(hours=1)
_VISIBLE = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class Claim:
    record_id: uuid.UUID
    committed: bool  # a side write: visible to other requests, given back by one


@dataclass(frozen=True)
class Replay:
    """The stored response of the request that first used the key."""

    status: int
    body: str
    message_id: uuid.UUID | None


def validate_key(key: str, *, header: str = "Idempotency-Key") -> str:
    if not _VISIBLE.match(key):
        raise ValidationFailed(f"{header} must be 1 to 256 visible ASCII characters", field=header)
    return key


def owned_key(key: str, owner: uuid.UUID | None) -> str:
    """The key as stored: prefixed with its owner, so one caller's keys are invisible to
    another's (at most 32 + 1 + 256 characters, within the column's 300)."""
    return key if owner is None else f"{owner.hex}:{key}"


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what makes two requests "the same request"."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


async def claim(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    scope: str,
    key: str,
    request_hash: str,
    side_engine: AsyncEngine | None = None,
) -> Claim | Replay:
    """Claim ``key`` for this request. In the api on PostgreSQL the claim is a side
    write (protections.side), committed at once, so a concurrent request with the same
    key sees it in flight; elsewhere it is part of the request's transaction (SQLite's
    writers take turns: the second request waits, then finds the stored response).
    Returns the stored response when the same request already completed; raises
    IdempotencyInFlight while the first is still being processed and
    IdempotencyConflict for another request under the key."""
    engine = side_engine
    if engine is None:
        return await _claim(
            IdempotencyRepository(session), workspace_id, scope, key, request_hash, False
        )
    async with side.connection(engine) as connection:
        return await _claim(
            IdempotencyRepository(connection), workspace_id, scope, key, request_hash, True
        )


async def _claim(
    records: IdempotencyRepository,
    workspace_id: uuid.UUID,
    scope: str,
    key: str,
    request_hash: str,
    committed: bool,
) -> Claim | Replay:
    for _ in range(3):
        now = utcnow()
        record_id = new_id()
        inserted = await records.insert_claim(
            {
                "id": record_id,
                "created_at": now,
                "workspace_id": workspace_id,
                "scope": scope,
                "key": key,
                "request_hash": request_hash,
                "expires_at": now + KEY_LIFETIME,
            }
        )
        if inserted:
            return Claim(record_id, committed=committed)
        existing = await records.get(workspace_id, scope, key)
        if existing is None:
            continue  # given back or expired meanwhile: claim again
        abandoned = existing.completed_at is None and existing.created_at < now - ABANDONED_CLAIM
        if existing.expires_at <= now or abandoned:
            await records.delete(existing.id)
            continue
        # In flight first: should that request fail, the key is free again.
        if existing.completed_at is None or existing.response_status is None:
            raise IdempotencyInFlight(
                "A request with this Idempotency-Key is still being processed"
            )
        if existing.request_hash != request_hash:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request")
        return Replay(existing.response_status, existing.response_body or "", existing.message_id)
    raise IdempotencyInFlight("A request with this Idempotency-Key is still being processed")


async def complete(
    session: AsyncSession, *, claim: Claim, status: int, body: str, message_id: uuid.UUID | None
) -> None:
    """Store the response in the caller's transaction: it commits with the message."""
    await IdempotencyRepository(session).complete(
        claim.record_id,
        {
            "completed_at": utcnow(),
            "response_status": status,
            "response_body": body,
            "message_id": message_id,
        },
    )


async def give_back(
    session: AsyncSession, *, claim: Claim, side_engine: AsyncEngine | None = None
) -> None:
    """The request failed: free the key. A claim made in the request's transaction goes
    with its rollback; a side write is deleted by another, after the request's own work
    is rolled back (so no lock of it can stand in the way)."""
    engine = side_engine
    if not claim.committed or engine is None:
        return
    await session.rollback()
    async with side.connection(engine) as connection:
        await IdempotencyRepository(connection).delete(claim.record_id)


async def once(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    scope: str,
    key: str,
    request_hash: str,
    status: int,
    accept: Callable[[], Awaitable[tuple[str, uuid.UUID | None]]],
    key_name: str = "Idempotency-Key",
    side_engine: AsyncEngine | None = None,
    owner: uuid.UUID | None = None,
) -> Replay | str:
    """Run ``accept`` at most once per key of ``owner``: it returns the response body it
    produced and the message it created. A request seen before gets its stored Replay; a
    new one gets its body, stored with the message in the caller's transaction. A
    failure frees the key, so a request that failed validation does not keep it."""
    validate_key(key, header=key_name)
    outcome = await claim(
        session,
        workspace_id=workspace_id,
        scope=scope,
        key=owned_key(key, owner),
        request_hash=request_hash,
        side_engine=side_engine,
    )
    if isinstance(outcome, Replay):
        return outcome
    try:
        body, message_id = await accept()
        await complete(session, claim=outcome, status=status, body=body, message_id=message_id)
    except Exception:
        await give_back(session, claim=outcome, side_engine=side_engine)
        raise
    return body


async def delete_expired(session: AsyncSession) -> int:
    return await IdempotencyRepository(session).delete_expired(now=utcnow())


async def find_duplicate(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    content_hash: str,
    within: timedelta = DUPLICATE_WINDOW,
) -> Message | None:
    """Seed 001's automatic duplicate detection: the latest message of the workspace with
    the same sender, recipients, subject, bodies and attachments accepted within
    ``within``, if any (best effort: two identical requests racing may both be sent)."""
    return await DuplicateRepository(session).latest_with_hash(
        workspace_id, content_hash, since=utcnow() - within
    )
