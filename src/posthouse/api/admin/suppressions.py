"""The suppression list for workspace admins (``Authorization: Bearer phk_...``, scope
admin). Errors use the native shape ``{"status": N, "message": "..."}``."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from posthouse.api.deps import AdminDep, SessionDep
from posthouse.api.native.errors import ErrorBody, render_error
from posthouse.api.rate_limits import bearer_token, rate_limited
from posthouse.api.routing import front_door_route
from posthouse.protections import suppression as suppression_service
from posthouse.protections.schemas import (
    SuppressionCreate,
    SuppressionList,
    SuppressionRead,
    suppression_read,
)

router = APIRouter(
    prefix="/api/v1/suppressions",
    tags=["suppressions"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(bearer_token))],
)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Invalid address, reason, use case id, cursor or limit",
        401: "Workspace key missing or invalid",
        403: "The key lacks the admin scope",
        404: "The address is not on this workspace's list, or no such use case",
        429: "Rate limited",
        503: "The database is unavailable; retry after Retry-After",
    }.items()
}


UseCaseQuery = Annotated[
    str | None,
    Query(
        description="The use case's entry (an unsubscribe from its mail); none = the workspace's"
    ),
]


def _json(model: SuppressionRead | SuppressionList, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


@router.get("", response_model=SuppressionList, responses=ERRORS, summary="List suppressions")
async def list_suppressions(
    session: SessionDep,
    caller: AdminDep,
    reason: Annotated[str | None, Query(description="Only entries with this reason")] = None,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    limit: Annotated[
        int,
        Query(
            description="Entries per page, 1 to 1000",
            json_schema_extra={"minimum": 1, "maximum": 1000},
        ),
    ] = 100,
) -> Response:
    """The workspace's suppressed addresses, oldest first, a page at a time."""
    page = await suppression_service.list_page(
        session,
        workspace_id=caller.workspace.id,
        reason=suppression_service.parse_reason(reason) if reason else None,
        cursor=cursor,
        limit=limit,
    )
    return _json(
        SuppressionList(
            suppressions=[suppression_read(e) for e in page.entries], nextCursor=page.next_cursor
        )
    )


@router.post(
    "", status_code=201, response_model=SuppressionRead, responses=ERRORS, summary="Suppress"
)
async def add_suppression(
    payload: SuppressionCreate, session: SessionDep, caller: AdminDep
) -> Response:
    """Add an address (or replace its entry); sends to it are refused or left out."""
    entry = await suppression_service.add(
        session,
        workspace_id=caller.workspace.id,
        address=payload.address,
        reason=suppression_service.parse_reason(payload.reason),
        expires_at=payload.expiresAt,
        created_by=f"key {caller.key.name}",
        use_case_id=suppression_service.parse_use_case(payload.useCaseId),
    )
    return _json(suppression_read(entry), status_code=201)


@router.get(
    "/{address}", response_model=SuppressionRead, responses=ERRORS, summary="Show a suppression"
)
async def get_suppression(
    address: str, session: SessionDep, caller: AdminDep, useCaseId: UseCaseQuery = None
) -> Response:
    """One entry: why the address is suppressed and since when."""
    entry = await suppression_service.get(
        session,
        workspace_id=caller.workspace.id,
        address=address,
        use_case_id=suppression_service.parse_use_case(useCaseId),
    )
    return _json(suppression_read(entry))


@router.delete("/{address}", status_code=204, responses=ERRORS, summary="Unsuppress")
async def remove_suppression(
    address: str, session: SessionDep, caller: AdminDep, useCaseId: UseCaseQuery = None
) -> Response:
    """Remove an address's entry from the list; it can be sent to again (unless another
    entry, workspace-wide or for the use case, still covers it)."""
    await suppression_service.remove(
        session,
        workspace_id=caller.workspace.id,
        address=address,
        use_case_id=suppression_service.parse_use_case(useCaseId),
    )
    return Response(status_code=204)
