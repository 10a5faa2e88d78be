"""Use cases, the workspace and its keys for workspace admins (``Authorization: Bearer
phk_...``, scope admin); errors in the native shape ``{"status": N, "message": "..."}``."""

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from posthouse.accounts import service as accounts_service
from posthouse.api.deps import AdminDep, SessionDep
from posthouse.api.native.errors import render_error
from posthouse.api.rate_limits import bearer_token, rate_limited
from posthouse.api.routing import front_door_route
from posthouse.usecases import service as usecases_service

router = APIRouter(
    prefix="/api/v1",
    tags=["use cases"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(bearer_token))],
)


class UseCaseCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)

    name: str
    domain: str = Field(description="One of the workspace's sending domains")
    type: str = Field("transactional", description="transactional or marketing")
    from_: str | None = Field(None, alias="from", description="Default no-reply@<domain>")
    track_opens: bool | None = Field(
        None, description="Default open tracking of its mail; null: the workspace's"
    )
    track_clicks: str | None = Field(
        None, description="Default click tracking: none, html, text or both; null: the workspace's"
    )


class UseCaseUpdate(BaseModel):
    """Only the fields given change; null goes back to the workspace's default."""

    model_config = ConfigDict(strict=True, extra="forbid")

    track_opens: bool | None = Field(None, description="Default open tracking of its mail")
    track_clicks: str | None = Field(
        None, description="Default click tracking: none, html, text or both"
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    scopes: str = Field(description="Space-separated: admin, send, channel.send, channel.view")
    name: str = ""


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.get("/workspace", summary="The key's workspace")
async def get_workspace(caller: AdminDep) -> Response:
    workspace = caller.workspace
    return _json(
        {"id": str(workspace.id), "name": workspace.name, "tier": workspace.reputation_tier}
    )


@router.post("/use-cases", status_code=201, summary="Add an email use case")
async def add_use_case(payload: UseCaseCreate, session: SessionDep, caller: AdminDep) -> Response:
    use_case = await usecases_service.add_use_case(
        session,
        workspace_id=caller.workspace.id,
        name=payload.name,
        domain=payload.domain,
        type=payload.type,
        from_email=payload.from_,
        engagement=payload.model_dump(
            include=set(usecases_service.ENGAGEMENT_FIELDS), exclude_unset=True
        ),
    )
    return _json(usecases_service.as_json(use_case), status_code=201)


@router.patch("/use-cases/{use_case_id}", summary="Change a use case's tracking defaults")
async def update_use_case(
    use_case_id: str, payload: UseCaseUpdate, session: SessionDep, caller: AdminDep
) -> Response:
    """Sets ``track_opens`` / ``track_clicks`` for mail sent through the use case that
    does not say; null inherits the workspace's. Fields left out stay as they are."""
    use_case = await usecases_service.update_use_case(
        session,
        workspace_id=caller.workspace.id,
        use_case=use_case_id,
        changes=payload.model_dump(exclude_unset=True),
    )
    return _json(usecases_service.as_json(use_case))


@router.get("/use-cases", summary="List email use cases")
async def list_use_cases(session: SessionDep, caller: AdminDep) -> Response:
    use_cases = await usecases_service.list_use_cases(session, workspace_id=caller.workspace.id)
    return _json([usecases_service.as_json(u) for u in use_cases])


@router.post("/keys", status_code=201, summary="Create a workspace key")
async def create_key(payload: KeyCreate, session: SessionDep, caller: AdminDep) -> Response:
    """A key for this workspace with the given scopes; shown once, stored hashed."""
    issued = await accounts_service.create_workspace_key(
        session, workspace_name=caller.workspace.name, name=payload.name, scopes=payload.scopes
    )
    return _json(accounts_service.issued_key_json(issued), status_code=201)
