"""Wire shapes of the suppression admin API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from posthouse.db.models import WORKSPACE_SCOPE, Suppression


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="The address to stop sending to")
    reason: str = Field("manual", description="hard_bounce, complaint, unsubscribe or manual")
    expiresAt: datetime | None = Field(None, description="When the entry lapses; none = never")
    useCaseId: str | None = Field(
        None, description="Only for mail sent through this use case; none = all the workspace's"
    )


class SuppressionRead(BaseModel):
    address: str
    reason: str
    createdAt: datetime
    expiresAt: datetime | None
    sourceEventId: str | None = Field(description="The bounce or complaint event, if any")
    createdBy: str | None = Field(description="The operator or key that added it, if any")
    scope: str = Field(
        description="workspace (all its mail) or use_case (the mail of useCaseId only: an "
        "unsubscribe from mail sent through it)"
    )
    useCaseId: str | None = Field(description="The use case, when scope is use_case")


class SuppressionList(BaseModel):
    suppressions: list[SuppressionRead]
    nextCursor: str | None = Field(description="Pass as cursor for the next page")


def suppression_read(entry: Suppression) -> SuppressionRead:
    return SuppressionRead(
        address=entry.address,
        reason=entry.reason,
        createdAt=entry.created_at,
        expiresAt=entry.expires_at,
        sourceEventId=str(entry.source_event_id) if entry.source_event_id else None,
        createdBy=entry.created_by,
        **scope_json(entry),
    )


def scope_json(entry: Suppression) -> dict[str, str | None]:
    """Where an entry applies, as the admin API and the CLI show it."""
    if entry.scope_id == WORKSPACE_SCOPE:
        return {"scope": "workspace", "useCaseId": None}
    return {"scope": "use_case", "useCaseId": str(entry.scope_id)}
