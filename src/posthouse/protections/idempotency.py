"""Idempotency keys, and seed 001's automatic duplicate detection.

A key's claim lives exactly as long as the request's own transaction, and its response is
stored in that transaction with the accepted message: a committed send always has its
stored response, and a request that fails, or whose process dies, leaves nothing behind.
On PostgreSQL the claim is a transaction-scoped advisory lock, so a concurrent request
with the same key sees it in flight at once (409 + Retry-After); PostgreSQL ends the
transaction of a vanished client (db.engine sets ``client_connection_check_interval``),
so a retry after a crash is answered within about a second. On SQLite every transaction
holds the one write lock: a second request waits for the first and finds its response.

Keys belong to the caller that used them (``owner``: the sender a token pair is bound
to): another sender's tokens in the same workspace neither replay nor see them.
"""

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import new_id, utcnow
from posthouse.db.models import Message
from posthouse.errors import IdempotencyConflict, IdempotencyInFlight, ValidationFailed
from posthouse.protections.repositories.idempotency import (
    DuplicateRepository,
    IdempotencyRepository,
)

KEY_LIFETIME = timedelta(hours=24)
DUPLICATE_WINDOW = timedelta(hours=1)
_VISIBLE = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class Claim:
    """The key is this request's until its transaction ends."""

    workspace_id: uuid.UUID
    scope: str
    key: str
    request_hash: str


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


def lock_id(workspace_id: uuid.UUID, scope: str, key: str) -> int:
    """The advisory lock that stands for a key: 64 bits of its digest (two keys sharing
    one would only make one of them wait, never send twice)."""
    digest = hashlib.sha256(f"{workspace_id}\x00{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def claim(
    session: AsyncSession, *, workspace_id: uuid.UUID, scope: str, key: str, request_hash: str
) -> Claim | Replay:
    """Claim ``key`` for this request's transaction. Returns the stored response when
    the same request already completed; raises IdempotencyInFlight while another
    transaction holds the key and IdempotencyConflict for another request under it."""
    records = IdempotencyRepository(session)
    if not await records.try_lock(lock_id(workspace_id, scope, key)):
        raise IdempotencyInFlight("A request with this Idempotency-Key is still being processed")
    # Read after the lock: whoever held it before has committed or rolled back.
    existing = await records.get(workspace_id, scope, key)
    if existing is not None:
        # Expired; or a claim an earlier version committed on its own and never completed.
        if existing.expires_at <= utcnow() or existing.response_status is None:
            await records.delete(existing.id)
        elif existing.request_hash != request_hash:
            raise IdempotencyConflict("Idempotency-Key was already used with a different request")
        else:
            return Replay(
                existing.response_status, existing.response_body or "", existing.message_id
            )
    return Claim(workspace_id, scope, key, request_hash)


async def complete(
    session: AsyncSession, *, claim: Claim, status: int, body: str, message_id: uuid.UUID | None
) -> None:
    """Store the response in the caller's transaction: it commits with the message."""
    now = utcnow()
    await IdempotencyRepository(session).insert(
        {
            "id": new_id(),
            "created_at": now,
            "workspace_id": claim.workspace_id,
            "scope": claim.scope,
            "key": claim.key,
            "request_hash": claim.request_hash,
            "expires_at": now + KEY_LIFETIME,
            "completed_at": now,
            "response_status": status,
            "response_body": body,
            "message_id": message_id,
        }
    )


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
    owner: uuid.UUID | None = None,
) -> Replay | str:
    """Run ``accept`` at most once per key of ``owner``: it returns the response body it
    produced and the message it created. A request seen before gets its stored Replay; a
    new one gets its body, stored with the message in the caller's transaction. A failure
    rolls the transaction back and the claim with it, so a request that failed validation
    does not keep the key."""
    validate_key(key, header=key_name)
    outcome = await claim(
        session,
        workspace_id=workspace_id,
        scope=scope,
        key=owned_key(key, owner),
        request_hash=request_hash,
    )
    if isinstance(outcome, Replay):
        return outcome
    body, message_id = await accept()
    await complete(session, claim=outcome, status=status, body=body, message_id=message_id)
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
