"""Use cases: add, list, and resolve one for a send."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts.repository import AccountRepository
from posthouse.addresses import normalize_email
from posthouse.db.models import Domain, Sender, UseCase
from posthouse.domains import service as domains_service
from posthouse.errors import UseCaseExists, UseCaseNotFound, ValidationFailed
from posthouse.sending import service as sending_service
from posthouse.sending.schemas import Caller, SendRequest
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import click_mode
from posthouse.usecases.repository import UseCaseRepository

TYPES = ("transactional", "marketing")


@dataclass(frozen=True)
class SendingUseCase:
    use_case: UseCase
    sender: Sender
    domain: Domain


async def add_use_case(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str,
    domain: str,
    type: str = "transactional",
    from_email: str | None = None,
    engagement: Mapping[str, object] | None = None,
) -> UseCase:
    """A use case on one of the workspace's domains, sending as ``from_email`` (by
    default no-reply@ the domain); that address becomes a sender of the workspace if it
    is not one yet. ``engagement``: its tracking defaults (see ``engagement_defaults``)."""
    defaults = engagement_defaults(engagement or {})
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("use case name must be 1 to 200 characters", field="name")
    if type not in TYPES:
        raise ValidationFailed("type must be transactional or marketing", field="type")
    setup = (
        await domains_service.get_domain(session, workspace_id=workspace_id, name=domain)
    ).domain
    address = normalize_email(from_email or f"no-reply@{setup.name}")
    if address.rsplit("@", 1)[1] != setup.name:
        raise ValidationFailed(f"from address must be in {setup.name}", field="from")
    use_cases = UseCaseRepository(session)
    if await use_cases.by_name(workspace_id, name) is not None:
        raise UseCaseExists(f"use case {name!r} exists already")
    accounts = AccountRepository(session)
    sender = await accounts.sender(workspace_id, address)
    if sender is None:
        sender = Sender(workspace_id=workspace_id, email=address, domain_name=setup.name)
        await accounts.add(sender)
    use_case = UseCase(
        workspace_id=workspace_id,
        domain_id=setup.id,
        sender_id=sender.id,
        name=name,
        type=type,
        from_email=address,
        **defaults,
    )
    await use_cases.add(use_case)
    return use_case


ENGAGEMENT_FIELDS = ("track_opens", "track_clicks")


def engagement_defaults(changes: Mapping[str, object]) -> dict[str, Any]:
    """Checked tracking defaults of a use case from ``changes`` (only the keys given):
    ``track_opens`` true, false or None, ``track_clicks`` none, html, text, both or
    None. None inherits the workspace's default (sending.engagement)."""
    unknown = set(changes) - set(ENGAGEMENT_FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    checked: dict[str, Any] = {}
    if "track_opens" in changes:
        opens = changes["track_opens"]
        if opens is not None and not isinstance(opens, bool):
            raise ValidationFailed("track_opens must be true, false or null", field="track_opens")
        checked["track_opens"] = opens
    if "track_clicks" in changes:
        checked["track_clicks"] = click_mode(changes["track_clicks"])
    return checked


async def update_use_case(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    use_case: str,
    changes: Mapping[str, object],
) -> UseCase:
    """Change a use case's tracking defaults (the keys of ``changes`` only). ``use_case``
    is its id or its name; another workspace's is not found."""
    defaults = engagement_defaults(changes)
    use_cases = UseCaseRepository(session)
    found = await use_cases.by_name(workspace_id, use_case)
    if found is None:
        found = await use_cases.by_id(workspace_id, _uuid(use_case))
    if found is None:
        raise UseCaseNotFound("use case not found")
    for name, value in defaults.items():
        setattr(found, name, value)
    await session.flush()
    return found


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def list_use_cases(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[UseCase]:
    return await UseCaseRepository(session).for_workspace(workspace_id)


async def for_send(
    session: AsyncSession, *, workspace_id: uuid.UUID, use_case_id: uuid.UUID
) -> SendingUseCase:
    found = await UseCaseRepository(session).with_sender(workspace_id, use_case_id)
    if found is None:
        raise UseCaseNotFound("use case not found")
    return SendingUseCase(*found)


def as_json(use_case: UseCase) -> dict[str, Any]:
    """The shape ``usecase add/list/update --json`` and the admin API print; a null
    tracking default is the workspace's."""
    return {
        "id": str(use_case.id),
        "name": use_case.name,
        "type": use_case.type,
        "setup_id": str(use_case.domain_id),
        "workspace_id": str(use_case.workspace_id),
        "from": use_case.from_email,
        "track_opens": use_case.track_opens,
        "track_clicks": use_case.track_clicks,
    }


async def submit(
    session: AsyncSession,
    *,
    caller: Caller,
    use_case_id: uuid.UUID,
    request: SendRequest,
    options: SubmitOptions,
) -> Accepted:
    """Send through a use case of the caller's workspace: as its address, through its
    sender, recorded under it, by the shared submit (every rule and protection applies)."""
    sending = await for_send(session, workspace_id=caller.workspace.id, use_case_id=use_case_id)
    request.sender = sending.use_case.from_email
    options.use_case = sending.use_case
    bound = Caller(caller.workspace, sending.sender)
    return await sending_service.submit(session, caller=bound, request=request, options=options)
