"""Operator settings of a workspace's protections, and the report ``workspace show``
prints: usage this month, rates over the window, suspension."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts.repository import AccountRepository
from posthouse.db.base import utcnow
from posthouse.db.models import Workspace
from posthouse.delivery import blocks, screening
from posthouse.errors import NotFound, ValidationFailed
from posthouse.protections import quota, reputation
from posthouse.sending.validation import click_mode


@dataclass(frozen=True)
class WorkspaceChanges:
    monthly_quota: int | None = None  # 0 removes the quota
    max_bounce_rate: float | None = None
    max_complaint_rate: float | None = None
    rate_min_volume: int | None = None
    rate_window_days: int | None = None
    unsuspend: bool = False
    # Engagement defaults for messages that do not say (sending.engagement).
    track_opens: bool | None = None
    track_clicks: str | None = None  # none, html, text or both


async def _by_name(session: AsyncSession, name: str) -> Workspace:
    workspace = await AccountRepository(session).workspace_by_name(name)
    if workspace is None:
        raise NotFound(f"workspace {name!r} not found")
    return workspace


async def create(
    session: AsyncSession, *, name: str, monthly_quota: int | None = None
) -> Workspace:
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("workspace name must be 1 to 200 characters", field="name")
    accounts = AccountRepository(session)
    if await accounts.workspace_by_name(name) is not None:
        raise ValidationFailed(f"workspace {name!r} exists already", field="name")
    workspace = Workspace(name=name, monthly_quota=_quota(monthly_quota))
    await accounts.add(workspace)
    return workspace


async def update(session: AsyncSession, *, name: str, changes: WorkspaceChanges) -> Workspace:
    """Apply the operator's changes; ``unsuspend`` lifts a suspension and releases the
    deliveries it held."""
    workspace = await _by_name(session, name)
    for field, value in (
        ("max_bounce_rate", changes.max_bounce_rate),
        ("max_complaint_rate", changes.max_complaint_rate),
    ):
        if value is not None:
            if not 0 <= value <= 1:
                raise ValidationFailed(f"{field} must be between 0 and 1", field=field)
            setattr(workspace, field, value)
    if changes.rate_min_volume is not None:
        if changes.rate_min_volume < 0:
            raise ValidationFailed("rate_min_volume must not be negative")
        workspace.rate_min_volume = changes.rate_min_volume
    if changes.rate_window_days is not None:
        if not 1 <= changes.rate_window_days <= 365:
            raise ValidationFailed("rate_window_days must be between 1 and 365")
        workspace.rate_window_days = changes.rate_window_days
    if changes.track_opens is not None:
        workspace.track_opens = changes.track_opens
    if changes.track_clicks is not None:
        workspace.track_clicks = click_mode(changes.track_clicks) or "none"
    if changes.monthly_quota is not None:
        workspace.monthly_quota = _quota(changes.monthly_quota)
        await quota.quota_changed(session, workspace_id=workspace.id)
    await session.flush()
    if changes.unsuspend:
        if await reputation.unsuspend(session, workspace=workspace):
            await screening.release_held(session, workspace_id=workspace.id)
    return workspace


def _quota(value: int | None) -> int | None:
    if value is None or value == 0:
        return None
    if value < 0:
        raise ValidationFailed("monthly quota must be a positive number (0 removes it)")
    return value


async def report(session: AsyncSession, *, name: str) -> dict[str, Any]:
    workspace = await _by_name(session, name)
    now = utcnow()
    rates = await reputation.rates(session, workspace=workspace, now=now)
    return {
        "id": str(workspace.id),
        "name": workspace.name,
        "tier": workspace.reputation_tier,
        "monthlyQuota": workspace.monthly_quota,
        "usageThisMonth": await quota.usage_this_month(session, workspace_id=workspace.id, now=now),
        "maxBounceRate": workspace.max_bounce_rate,
        "maxComplaintRate": workspace.max_complaint_rate,
        "rateMinVolume": workspace.rate_min_volume,
        "rateWindowDays": workspace.rate_window_days,
        "rates": {
            "since": rates.since.isoformat(),
            "volume": rates.volume,
            "bounced": rates.bounced,
            "complained": rates.complained,
            "bounceRate": rates.bounce_rate,
            "complaintRate": rates.complaint_rate,
            "judged": rates.judged,
        },
        "suspended": workspace.suspended_at is not None,
        "suspendedAt": workspace.suspended_at.isoformat() if workspace.suspended_at else None,
        "suspensionReason": workspace.suspension_reason,
        "blocks": await blocks.listed(session, workspace_id=workspace.id),
        "trackOpens": workspace.track_opens,
        "trackClicks": workspace.track_clicks,
    }


async def workspace_id(session: AsyncSession, *, name: str) -> uuid.UUID:
    return (await _by_name(session, name)).id
