"""The native history (seed 000's token pair and error shape): the sender's emails with
filters and paging, and the polling event feed. The email detail is routes.py's
``GET /api/v1/emails/{referenceId}``, which adds each recipient's history."""

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from posthouse.addresses import Address
from posthouse.api.deps import SessionDep
from posthouse.api.native.errors import render_error
from posthouse.api.native.routes import CallerDep, access_token_of
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import front_door_route
from posthouse.db.models import Delivery, Event, Message
from posthouse.history import service as history
from posthouse.history.paging import Tokens
from posthouse.sending.ids import reference_id
from posthouse.sending.schemas import Caller

router = APIRouter(
    prefix="/api/v1",
    tags=["history"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(access_token_of))],
)

Many = Annotated[list[str], Query()]


def _sender_id(caller: Caller) -> uuid.UUID:
    # A token pair is bound to one sender: its history is that sender's.
    assert caller.sender is not None
    return caller.sender.id


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _tokens(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.history_tokens
    return tokens


@router.get("/emails", summary="List the sender's emails")
async def list_emails(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    recipient: Many = [],  # noqa: B006 - FastAPI copies defaults
    state: Many = [],  # noqa: B006
    sentAfter: datetime | None = None,
    sentBefore: datetime | None = None,
    subject: Annotated[str | None, Query(description="Subject contains (any case)")] = None,
    limit: int = history.DEFAULT_LIMIT,
    continuationToken: str | None = None,
) -> Response:
    """Newest first. ``recipient`` and ``state`` are repeatable (any match: an email
    matches when one of its recipients does); ``sentAfter`` is inclusive, ``sentBefore``
    exclusive. Pass ``continuationToken`` from the previous page, with the same filters."""
    page = await history.list_messages(
        session,
        workspace_id=caller.workspace.id,
        sender_id=_sender_id(caller),
        recipients=recipient,
        states=state,
        sent_after=sentAfter,
        sent_before=sentBefore,
        subject_contains=subject,
        page=history.Page(limit, continuationToken),
        tokens=_tokens(request),
    )
    return _json(
        {
            "emails": [_email(message, deliveries) for message, deliveries in page.messages],
            "hasMore": page.has_more,
            "continuationToken": page.token,
        }
    )


def _email(message: Message, deliveries: list[Delivery]) -> dict[str, Any]:
    return {
        "referenceId": reference_id(message.id),
        "from": Address(message.from_email, message.from_name).formatted(),
        "subject": message.subject,
        "createdAt": _iso(message.created_at),
        "attachmentCount": message.attachment_count,
        "recipients": [
            {"email": d.recipient, "type": d.kind, "status": d.status, "state": d.state}
            for d in deliveries
        ],
    }


@router.get("/events", summary="Poll the sender's events")
async def poll_events(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    after: Annotated[str | None, Query(description="The cursor of the previous poll")] = None,
    limit: int = 100,
) -> Response:
    """Events in a stable order: a client that polls with the returned ``cursor`` sees
    every event exactly once, also events whose transactions commit out of order."""
    page = await history.poll_feed(
        session,
        workspace_id=caller.workspace.id,
        sender_id=_sender_id(caller),
        cursor=after,
        limit=limit,
        tokens=_tokens(request),
    )
    return _json(
        {
            "events": [_event(item.event, item.recipient) for item in page.events],
            "cursor": page.cursor,
            "hasMore": page.has_more,
        }
    )


def _event(event: Event, recipient: str | None) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "referenceId": reference_id(event.message_id),
        "recipient": recipient,
        "type": event.type,
        "eventAt": _iso(event.occurred_at),
        "receivedAt": _iso(event.received_at),
        "data": event.data,
    }
