"""Stored templates for workspace admins (``Authorization: Bearer phk_...``, scope admin).

``{id}`` is the template's ``tpl_<ULID>`` or its number in the workspace. Errors use the
native shape ``{"status": N, "message": "..."}``; another workspace's template answers
404 exactly like one that does not exist.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from posthouse.api.deps import AdminDep, SessionDep
from posthouse.api.native.errors import ErrorBody, render_error
from posthouse.api.rate_limits import bearer_token, rate_limited
from posthouse.api.routing import front_door_route
from posthouse.templates import service as templates_service
from posthouse.templates.rendering import TemplateParts
from posthouse.templates.schemas import (
    TemplateCreate,
    TemplatePublish,
    TemplateRead,
    TemplateRendered,
    TemplateRenderRequest,
    TemplateSummary,
    TemplateUpdate,
    template_read,
    template_rendered,
    template_summary,
)

router = APIRouter(
    prefix="/api/v1/templates",
    tags=["templates"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(bearer_token))],
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Invalid name or values, or no HTML and no text; rendering failed",
        401: "Workspace key missing or invalid",
        403: "The key lacks the admin scope",
        404: "No such template (or version) in this workspace",
        422: "A part does not compile: the message names the part, the line and the error",
        429: "Rate limited",
    }.items()
}


def _json(model: Any, status_code: int = 200) -> Response:
    if isinstance(model, list):
        body = "[" + ",".join(m.model_dump_json() for m in model) + "]"
    else:
        body = model.model_dump_json()
    return Response(body, status_code=status_code, media_type="application/json")


@router.get("", response_model=list[TemplateSummary], responses=ERRORS, summary="List templates")
async def list_templates(session: SessionDep, caller: AdminDep) -> Response:
    """The workspace's templates, by number."""
    templates = await templates_service.list_templates(session, workspace_id=caller.workspace.id)
    return _json([template_summary(t) for t in templates])


@router.post(
    "", status_code=201, response_model=TemplateRead, responses=ERRORS, summary="Add a template"
)
async def add_template(payload: TemplateCreate, session: SessionDep, caller: AdminDep) -> Response:
    """Store a template as version 1, published; every part is compiled first."""
    detail = await templates_service.add_template(
        session,
        workspace_id=caller.workspace.id,
        name=payload.name,
        parts=TemplateParts(payload.subject, payload.html, payload.text),
    )
    return _json(template_read(detail), status_code=201)


@router.get("/{id}", response_model=TemplateRead, responses=ERRORS, summary="Get a template")
async def get_template(
    id: str,
    session: SessionDep,
    caller: AdminDep,
    version: Annotated[int | None, Query(description="Default: the published version")] = None,
) -> Response:
    """A version of the template (the published one unless asked) and its history."""
    detail = await templates_service.get_template(
        session, workspace_id=caller.workspace.id, ref=id, version=version
    )
    return _json(template_read(detail))


@router.patch("/{id}", response_model=TemplateRead, responses=ERRORS, summary="Update a template")
async def update_template(
    id: str, payload: TemplateUpdate, session: SessionDep, caller: AdminDep
) -> Response:
    """Parts given make a new version (published only with ``publish``); versions are
    never changed, and mail already accepted keeps the version it was accepted with."""
    detail = await templates_service.update_template(
        session,
        workspace_id=caller.workspace.id,
        ref=id,
        name=payload.name,
        changes=payload.changes(),
        publish=payload.publish,
    )
    return _json(template_read(detail))


@router.post(
    "/{id}/publish", response_model=TemplateRead, responses=ERRORS, summary="Publish a version"
)
async def publish_template(
    id: str, payload: TemplatePublish, session: SessionDep, caller: AdminDep
) -> Response:
    """Sends that name no version use this one from now on."""
    detail = await templates_service.publish_template(
        session, workspace_id=caller.workspace.id, ref=id, version=payload.version
    )
    return _json(template_read(detail))


@router.delete("/{id}", status_code=204, responses=ERRORS, summary="Delete a template")
async def delete_template(id: str, session: SessionDep, caller: AdminDep) -> Response:
    """New sends can no longer use it; mail already accepted is still rendered from it."""
    await templates_service.delete_template(session, workspace_id=caller.workspace.id, ref=id)
    return Response(status_code=204)


@router.post(
    "/{id}/render",
    response_model=TemplateRendered,
    responses=ERRORS,
    summary="Render a template without sending",
)
async def render_template(
    id: str, payload: TemplateRenderRequest, session: SessionDep, caller: AdminDep
) -> Response:
    """The subject, HTML and text a send with these variables would get, and the
    variables it lacks (rendered empty here; a send without them is refused)."""
    preview = await templates_service.preview(
        session,
        workspace_id=caller.workspace.id,
        ref=id,
        version=payload.version,
        variables=payload.variables,
    )
    return _json(template_rendered(preview))
