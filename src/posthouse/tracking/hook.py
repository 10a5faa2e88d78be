"""Tracking in the worker: per message a plan, per delivery a copy of its own.

``prepare`` runs in the worker's claim transaction: it makes (or finds) each claimed
message's ``TrackingPlan`` and records every claimed delivery's link targets before any
copy pointing at them can be sent. ``customise`` then gives a delivery its copy (signed
links, pixel, attachment links, List-Unsubscribe pair), or None for a message that asked
for no tracking, whose copies are all the same and built and signed once.
"""

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.config import Settings
from posthouse.db.models import Message
from posthouse.errors import TemplateRenderFailed
from posthouse.mime.builder import MimeContent
from posthouse.tracking import service as tracking_service
from posthouse.tracking.content import DeliveryUrls, TrackingOptions, TrackingPlan

_PLANS = 512  # as many messages as the worker keeps contents of


class RecipientHook(Protocol):
    """delivery.content.RecipientHook, restated: tracking may not import the worker."""

    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None: ...


def link_base(public_url: str, tracking_domain: str | None) -> str:
    """Where a message's tracking links point: POSTHOUSE_PUBLIC_URL, or its scheme and
    path on the message's tracking domain (a host the operator points at posthouse; the
    tokens, not the host, say what a hit is)."""
    if tracking_domain is None:
        return public_url
    parts = urlsplit(public_url)
    return urlunsplit((parts.scheme, tracking_domain, parts.path, "", ""))


class TrackingHook:
    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.public_url
        self.signer = tracking_service.signer(settings)
        # message id -> its plan or None, and the copies' DeliveryUrls
        self._plans: OrderedDict[uuid.UUID, tuple[TrackingPlan | None, DeliveryUrls]] = (
            OrderedDict()
        )

    def _plan(
        self, message: Message, content: MimeContent, mailto_domain: str | None = None
    ) -> tuple[TrackingPlan | None, DeliveryUrls]:
        known = self._plans.get(message.id)
        if known is not None:
            self._plans.move_to_end(message.id)
            return known
        options = TrackingOptions(
            opens=message.track_opens,
            html_clicks=message.track_clicks,
            text_clicks=message.track_text_clicks,
            unsubscribe=message.unsubscribe,
            tracked_attachments=frozenset(
                position for position, a in enumerate(content.attachments) if a.track
            ),
        )
        urls = DeliveryUrls(
            link_base(self.public_url, message.tracking_domain), self.signer, mailto_domain
        )
        plan = TrackingPlan(content, options, urls.public_url) if options.any else None
        self._plans[message.id] = (plan, urls)
        while len(self._plans) > _PLANS:
            self._plans.popitem(last=False)
        return plan, urls

    async def prepare(
        self,
        session: AsyncSession,
        *,
        deliveries: Iterable[tuple[uuid.UUID, str, Message, MimeContent, str | None]],
        before: RecipientHook | None = None,
    ) -> None:
        """(delivery id, recipient, message, content, return-path domain) of each claimed
        delivery: plans made, link targets recorded. ``before`` is the hook that runs
        ahead of tracking (personalisation): a copy it makes has its links recorded, the
        ones customise() will find in it."""
        targets: dict[uuid.UUID, list[str]] = {}
        for delivery_id, recipient, message, content, return_path_domain in deliveries:
            plan, urls = self._plan(message, content, return_path_domain)
            if plan is None:
                continue
            try:
                own = (
                    before.customise(message, content, recipient=recipient, delivery_id=delivery_id)
                    if before is not None
                    else None
                )
            except TemplateRenderFailed:
                # Not this claim's failure: the send renders the copy again and rejects it.
                continue
            found = (
                TrackingPlan(own, plan.options, urls.public_url).targets if own else plan.targets
            )
            if found:
                targets[delivery_id] = found
        await tracking_service.record_links(session, targets=targets)

    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None:
        """This delivery's own copy, or None when the message asked for no tracking."""
        plan, urls = self._plan(message, content)
        if plan is None:
            return None
        if content is not plan.content:
            # An earlier hook (personalisation) gave this recipient content of its own:
            # its bodies are cut afresh, finding the targets prepare() recorded from the
            # same content.
            plan = TrackingPlan(content, plan.options, urls.public_url)
        return plan.copy(delivery_id, urls)
