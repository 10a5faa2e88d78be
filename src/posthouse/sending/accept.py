"""The accept step every front door calls: from a caller and a request to a committed
answer.

A front door authenticates (a ``Caller``), turns its request into a ``SendRequest``,
calls ``accept`` with the service call to make and how to render its result, and turns
the ``Answer`` (or a domain error) into its own response. Everything else is here or in
what this calls: the submit options built from the app's ``AcceptContext`` (settings,
caches, the side-write pool, the content step), the Idempotency-Key with its fingerprint,
and the worker's wake-up once the answer is committed.
"""

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from posthouse.config import Settings
from posthouse.domains.service import VerifiedDomainCache
from posthouse.protections import idempotency
from posthouse.sending.content import ContentStep
from posthouse.sending.schemas import AttachmentInput, Caller
from posthouse.sending.service import Accepted, SubmitOptions

# The service call a door makes (submit, a reply) with the options accept() built, and
# the body it answers with: both run once per key, and the body is stored with the key.
Action = Callable[[SubmitOptions], Awaitable[tuple[Accepted, str]]]


@dataclass(frozen=True)
class AcceptContext:
    """What an app gives every accept, built once when it starts (``app.state.accept``)."""

    settings: Settings
    verified_domains: VerifiedDomainCache | None = None
    # PostgreSQL's pool for side writes (protections.side); None on SQLite.
    side_engine: AsyncEngine | None = None
    # Wakes an in-process worker (posthouse serve); None when workers run apart.
    wake_worker: Callable[[], None] | None = None
    content: ContentStep | None = None

    def options(self, *, api: str, last_write: bool) -> SubmitOptions:
        return SubmitOptions(
            queue_lifetime=timedelta(seconds=self.settings.queue_lifetime_seconds),
            api=api,
            require_verified_domain=self.settings.require_verified_domains,
            verified_domains=self.verified_domains,
            last_write=last_write,
            side_engine=self.side_engine,
            content=self.content,
        )


@dataclass(frozen=True)
class IdempotencyKey:
    """A request's idempotency key, the header it came in (for error messages) and the
    fingerprint of the request, which decides "same request" or "key reused"."""

    key: str
    fingerprint: str
    header: str = "Idempotency-Key"


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # JSON text, as the door rendered it (or as stored under the key)
    replayed: bool = False
    # Run once the response is sent (and so the transaction committed): the worker's
    # wake-up. None for a replay, which queued nothing new.
    after_commit: Callable[[], None] | None = None


def request_fingerprint(
    method: str,
    path: str,
    query: str,
    payload: Any,
    attachments: Sequence[AttachmentInput] = (),
) -> str:
    """The fingerprint of a request as a door received it: what it asked for, including
    its files by digest, whatever the order of the payload's keys."""
    return idempotency.fingerprint(
        method,
        path,
        query,
        json.dumps(payload, sort_keys=True),
        *(
            f"{a.filename}\x00{a.content_type}\x00{hashlib.sha256(a.data).hexdigest()}"
            for a in attachments
        ),
    )


async def accept(
    session: AsyncSession,
    context: AcceptContext,
    *,
    caller: Caller,
    api: str,
    action: Action,
    key: IdempotencyKey | None = None,
    status: int = 202,
) -> Answer:
    """Run ``action`` once: under ``key`` when there is one (a request seen before gets
    its stored answer, replayed), else directly. Nothing commits here; the door's route
    commits before it answers."""
    # Without a key nothing is written after the message; with one, its answer is.
    options = context.options(api=api, last_write=key is None)
    if key is None:
        _, body = await action(options)
        return Answer(status, body, after_commit=context.wake_worker)

    async def accepted_body() -> tuple[str, uuid.UUID | None]:
        accepted, body = await action(options)
        return body, accepted.message.id

    outcome = await idempotency.once(
        session,
        workspace_id=caller.workspace.id,
        scope=api,
        key=key.key,
        request_hash=key.fingerprint,
        status=status,
        accept=accepted_body,
        key_name=key.header,
        side_engine=context.side_engine,
        # A sender's keys are its own: another sender's tokens in the workspace neither
        # replay its answers nor learn that a key exists (a workspace key sees all).
        owner=caller.sender.id if caller.sender is not None else None,
    )
    if isinstance(outcome, idempotency.Replay):
        return Answer(outcome.status, outcome.body, replayed=True)
    return Answer(status, outcome, after_commit=context.wake_worker)
