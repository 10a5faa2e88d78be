"""Bounce and complaint rates over a rolling window, and the suspension they cause.

Rates count distinct deliveries since the later of the window start and the last time an
operator lifted a suspension: hard-bounced / (delivered + hard-bounced) and
complained / (delivered + hard-bounced). They are judged only once that volume reaches
the workspace's ``rate_min_volume``; crossing a threshold suspends the workspace, which
refuses sends (submit) and holds queued deliveries (worker) until an operator lifts it.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.db.base import utcnow
from posthouse.db.models import Workspace
from posthouse.errors import WorkspaceSuspended
from posthouse.protections.repositories.reputation import ReputationRepository

# Reputation tiers (seed 004's ``tier``), from the rates as last judged:
TIER_NEW = "new"  # fewer deliveries in the window than rate_min_volume: not judged yet
TIER_GOOD = "good"  # both rates at most half their thresholds
TIER_AT_RISK = "at_risk"  # a rate above half its threshold (crossing it suspends)

HIGH_BOUNCE_RATE = "high bounce rate"
HIGH_COMPLAINT_RATE = "high complaint rate"


@dataclass(frozen=True)
class Rates:
    since: datetime
    volume: int
    bounced: int
    complained: int
    judged: bool  # volume reached the minimum

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.volume if self.volume else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.volume if self.volume else 0.0


def tier_of(workspace: Workspace, rates: Rates) -> str:
    if not rates.judged:
        return TIER_NEW
    if (
        rates.bounce_rate <= workspace.max_bounce_rate / 2
        and rates.complaint_rate <= workspace.max_complaint_rate / 2
    ):
        return TIER_GOOD
    return TIER_AT_RISK


def ensure_not_suspended(workspace: Workspace) -> None:
    if workspace.suspended_at is not None:
        reason = workspace.suspension_reason or HIGH_BOUNCE_RATE
        raise WorkspaceSuspended(reason)


def window_start(workspace: Workspace, *, now: datetime) -> datetime:
    since = now - timedelta(days=workspace.rate_window_days)
    if workspace.rates_reset_at is not None and workspace.rates_reset_at > since:
        since = workspace.rates_reset_at
    return since


async def rates(session: AsyncSession, *, workspace: Workspace, now: datetime) -> Rates:
    since = window_start(workspace, now=now)
    counts = await ReputationRepository(session).outcome_counts(workspace.id, since=since)
    return rates_from_counts(counts, workspace=workspace, since=since)


def rates_from_counts(counts: dict[str, int], *, workspace: Workspace, since: datetime) -> Rates:
    bounced = counts.get("bounced", 0)
    volume = counts.get("delivered", 0) + bounced
    return Rates(
        since=since,
        volume=volume,
        bounced=bounced,
        complained=counts.get("complained", 0),
        judged=volume > 0 and volume >= workspace.rate_min_volume,
    )


async def judge(session: AsyncSession, *, workspace_id: uuid.UUID) -> Rates | None:
    """Re-compute the workspace's rates and suspend it when one crosses its threshold.
    Returns None for a workspace already suspended (nothing to judge)."""
    workspace = await session.get(Workspace, workspace_id, populate_existing=True)
    if workspace is None or workspace.suspended_at is not None:
        return None
    now = utcnow()
    current = await rates(session, workspace=workspace, now=now)
    tier = tier_of(workspace, current)
    if workspace.reputation_tier != tier:
        workspace.reputation_tier = tier
        await session.flush()
    if not current.judged:
        return current
    reason = exceeded(current, workspace=workspace)
    if reason is not None:
        await ReputationRepository(session).suspend(workspace.id, reason=reason, now=now)
        await session.refresh(workspace)
    return current


def exceeded(current: Rates, *, workspace: Workspace) -> str | None:
    """The suspension reason the rates call for, if any."""
    if not current.judged:
        return None
    if current.bounce_rate > workspace.max_bounce_rate:
        return HIGH_BOUNCE_RATE
    if current.complaint_rate > workspace.max_complaint_rate:
        return HIGH_COMPLAINT_RATE
    return None


async def unsuspend(session: AsyncSession, *, workspace: Workspace) -> bool:
    """Lift a suspension; False when there was none. The held deliveries are released
    by their owner (delivery.screening.release_held)."""
    if workspace.suspended_at is None:
        return False
    workspace.suspended_at = None
    workspace.suspension_reason = None
    workspace.rates_reset_at = utcnow()
    workspace.reputation_tier = TIER_NEW
    await session.flush()
    return True


async def suspended_among(
    session: AsyncSession, *, workspace_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    return await ReputationRepository(session).suspended_among(workspace_ids)
