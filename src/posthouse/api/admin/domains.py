"""Sending domains for workspace admins (``Authorization: Bearer phk_...``, scope admin).

Errors use the native shape ``{"status": N, "message": "..."}``. Another workspace's
domain answers 404 exactly like a domain that does not exist.
"""

from typing import Any

from fastapi import APIRouter, Depends, Response

from posthouse.api.deps import AdminDep, SessionDep, SettingsDep
from posthouse.api.native.errors import ErrorBody, render_error
from posthouse.api.rate_limits import bearer_token, rate_limited
from posthouse.api.routing import front_door_route
from posthouse.domains import service as domains_service
from posthouse.domains.schemas import DomainCreate, DomainRead, domain_read

router = APIRouter(
    prefix="/api/v1/domains",
    tags=["domains"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(bearer_token))],
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Invalid domain name",
        401: "Workspace key missing or invalid",
        403: "The key lacks the admin scope",
        404: "No such domain (or selector) in this workspace",
        409: "Domain exists already, or the new selector's record is not published yet",
    }.items()
}


def _json(model: DomainRead | list[DomainRead], status_code: int = 200) -> Response:
    if isinstance(model, list):
        body = "[" + ",".join(m.model_dump_json() for m in model) + "]"
    else:
        body = model.model_dump_json()
    return Response(body, status_code=status_code, media_type="application/json")


@router.get("", response_model=list[DomainRead], responses=ERRORS, summary="List domains")
async def list_domains(session: SessionDep, caller: AdminDep) -> Response:
    """The workspace's sending domains with their DNS records and verification state."""
    details = await domains_service.list_domains(session, workspace_id=caller.workspace.id)
    return _json([domain_read(d) for d in details])


@router.post(
    "", status_code=201, response_model=DomainRead, responses=ERRORS, summary="Add a domain"
)
async def add_domain(
    payload: DomainCreate, session: SessionDep, settings: SettingsDep, caller: AdminDep
) -> Response:
    """Create a domain with a 2048-bit DKIM key; publish the returned records, then verify."""
    detail = await domains_service.add_domain(
        session,
        workspace_id=caller.workspace.id,
        name=payload.name,
        mail_host=domains_service.mail_host(settings),
        return_path_domain=payload.returnPathDomain,
    )
    return _json(domain_read(detail), status_code=201)


@router.get("/{name}", response_model=DomainRead, responses=ERRORS, summary="Get a domain")
async def get_domain(name: str, session: SessionDep, caller: AdminDep) -> Response:
    """The domain's records as they were last seen in DNS."""
    detail = await domains_service.get_domain(session, workspace_id=caller.workspace.id, name=name)
    return _json(domain_read(detail))


@router.post(
    "/{name}/verify", response_model=DomainRead, responses=ERRORS, summary="Verify a domain"
)
async def verify_domain(
    name: str, session: SessionDep, settings: SettingsDep, caller: AdminDep
) -> Response:
    """Look every record up in DNS now and store what was seen."""
    detail = await domains_service.verify_domain(
        session,
        workspace_id=caller.workspace.id,
        name=name,
        resolver=domains_service.verification_resolver(settings),
    )
    return _json(domain_read(detail))


@router.post(
    "/{name}/dkim/rotate",
    response_model=DomainRead,
    responses=ERRORS,
    summary="Add a new DKIM selector",
)
async def rotate_dkim(name: str, session: SessionDep, caller: AdminDep) -> Response:
    """Create a new key and selector beside the active one. Publish its record, then
    activate it; the old key keeps signing until then."""
    detail = await domains_service.rotate_dkim(session, workspace_id=caller.workspace.id, name=name)
    return _json(domain_read(detail))


@router.post(
    "/{name}/dkim/{selector}/activate",
    response_model=DomainRead,
    responses=ERRORS,
    summary="Sign with another DKIM selector",
)
async def activate_dkim(
    name: str, selector: str, session: SessionDep, settings: SettingsDep, caller: AdminDep
) -> Response:
    """Switch signing to ``selector`` once DNS shows its record (409 until then)."""
    detail = await domains_service.activate_dkim(
        session,
        workspace_id=caller.workspace.id,
        name=name,
        selector=selector,
        resolver=domains_service.verification_resolver(settings),
    )
    return _json(domain_read(detail))
