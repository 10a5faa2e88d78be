"""Seed 004's email API ("envelope"): send through use cases, and query the history.

Workspace keys (``Authorization: Bearer phk_...``) with the scopes ``channel.send`` and
``channel.view`` carry seed 004's permissions Channel.send and Channel.view. Like every
front door this only authenticates, translates and maps errors: sends go through the
shared accept path (usecases.service.submit -> sending.service.submit), queries through
history.service. Every error has one body, ``{"error": {"code", "message"}}``
(docs/compatibility.md). A key of another workspace, a wrong workspace id in the path and
an id that does not exist get the same 404.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from posthouse.accounts import service as accounts_service
from posthouse.accounts.service import WorkspaceCredentials
from posthouse.api.deps import SessionDep
from posthouse.api.dialects.envelope.errors import render_error
from posthouse.api.multipart import read_multipart_send
from posthouse.api.rate_limits import bearer_token, rate_limited
from posthouse.api.routing import answer_response, front_door_route
from posthouse.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from posthouse.history import service as history
from posthouse.history.downloads import Downloads
from posthouse.history.paging import Tokens
from posthouse.sending import accept as accept_path
from posthouse.sending.accept import IdempotencyKey
from posthouse.sending.schemas import Caller, SendRequest
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import SendLimits
from posthouse.usecases import service as usecases_service

API = "envelope"
SEND = "channel.send"
VIEW = "channel.view"
LIMITS = SendLimits(max_body_bytes=1024 * 1024, max_attachments=5)

router = APIRouter(
    prefix="/v1/{workspace_id}/email",
    tags=["seed 004: email"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(bearer_token))],
)
# The signed download URLs the attachment endpoint redirects to: the URL is the credential.
downloads_router = APIRouter(
    prefix="/v1/email-downloads",
    tags=["seed 004: email"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(lambda request: None))],  # the client IP's bucket
)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _caller(scope: str) -> Callable[..., Awaitable[WorkspaceCredentials]]:
    async def dependency(
        request: Request, session: SessionDep, workspace_id: str
    ) -> WorkspaceCredentials:
        token = bearer_token(request)
        if not token:
            raise Unauthenticated("Authorization: Bearer <workspace key> is required")
        credentials = await accounts_service.authenticate_workspace_key(
            session, token=token, scope=None, cache=request.app.state.workspace_key_cache
        )
        # Checked before the scope: another workspace's id is "not found", never "forbidden".
        if credentials.workspace.id != _uuid(workspace_id):
            raise NotFound("not found")
        if not credentials.allows(scope):
            raise Forbidden(f"this key lacks the {scope} permission")
        return credentials

    return dependency


Sender = Annotated[WorkspaceCredentials, Depends(_caller(SEND))]
Viewer = Annotated[WorkspaceCredentials, Depends(_caller(VIEW))]


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _tokens(request: Request) -> Tokens:
    tokens: Tokens = request.app.state.history_tokens
    return tokens


def _one(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name, [])
    if len(values) != 1:
        raise ValidationFailed(f"{name} is required (once)", field=name)
    return values[0]


@router.post("/send", status_code=201, summary="Send an email")
async def send_email(request: Request, session: SessionDep, caller: Sender) -> Response:
    """Multipart: use_case_id, to_address, subject, body_html, up to 5 attachments."""
    form = await read_multipart_send(request, max_files=LIMITS.max_attachments, json_payload=False)
    use_case_id = _uuid(_one(form.fields, "use_case_id"))
    if use_case_id is None:
        raise ValidationFailed("use_case_id must be a UUID", field="use_case_id")
    send = SendRequest(
        sender=None,
        to=[_one(form.fields, "to_address")],
        subject=_one(form.fields, "subject"),
        html=_one(form.fields, "body_html"),
        attachments=form.attachments,
    )
    workspace = Caller(caller.workspace)

    async def action(options: SubmitOptions) -> tuple[Accepted, str]:
        options.limits = LIMITS
        accepted = await usecases_service.submit(
            session, caller=workspace, use_case_id=use_case_id, request=send, options=options
        )
        body = {
            "id": str(accepted.deliveries[0].id),
            "message_id": accepted.message.message_id_header,
            "sent_at": _iso(accepted.message.created_at),
            "attachment_filenames": [a.filename for a in accepted.send.attachments],
        }
        return accepted, orjson.dumps(body).decode()

    key = request.headers.get("idempotency-key")
    fingerprint = accept_path.request_fingerprint(
        request.method, request.url.path, request.url.query, form.fields, form.attachments
    )
    answer = await accept_path.accept(
        session,
        request.app.state.accept,
        caller=workspace,
        api=API,
        action=action,
        key=None if key is None else IdempotencyKey(key, fingerprint),
        status=201,
    )
    return answer_response(answer)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _scope(
    caller: WorkspaceCredentials, use_case_id: str | None, setup_id: str | None
) -> history.Scope:
    # A malformed id matches nothing, like an id of another workspace.
    nothing = uuid.UUID(int=0)
    return history.Scope(
        workspace_id=caller.workspace.id,
        use_case_id=(_uuid(use_case_id) or nothing) if use_case_id else None,
        setup_id=(_uuid(setup_id) or nothing) if setup_id else None,
    )


Limit = Annotated[int, Query(description="1 to 200")]
Many = Annotated[list[str], Query()]


@router.get("", summary="List emails")
async def list_emails(
    request: Request,
    session: SessionDep,
    caller: Viewer,
    use_case_id: str | None = None,
    setup_id: str | None = None,
    to_address: Many = [],  # noqa: B006 - FastAPI copies defaults
    state: Many = [],  # noqa: B006
    sent_after: datetime | None = None,
    sent_before: datetime | None = None,
    limit: Limit = history.DEFAULT_LIMIT,
    continuation_token: str | None = None,
) -> Response:
    page = await history.list_emails(
        session,
        scope=_scope(caller, use_case_id, setup_id),
        recipients=to_address,
        states=state,
        sent_after=sent_after,
        sent_before=sent_before,
        page=history.Page(limit, continuation_token),
        tokens=_tokens(request),
    )
    return _json(
        {
            "emails": [_summary(email) for email in page.emails],
            "has_more": page.has_more,
            "continuation_token": page.token,
        }
    )


def _summary(email: history.EmailSummary) -> dict[str, Any]:
    return {
        "id": str(email.id),
        "ses_use_case_id": str(email.use_case_id) if email.use_case_id else None,
        "setup_id": str(email.setup_id) if email.setup_id else None,
        "from_address": email.from_address,
        "to_address": email.to_address,
        "subject": email.subject,
        "state": email.state,
        "sent_at": _iso(email.sent_at),
        "has_attachment": email.has_attachment,
        "open_count": email.open_count,
        "click_count": email.click_count,
    }


@router.get("/event", summary="List email events")
async def list_events(
    request: Request,
    session: SessionDep,
    caller: Viewer,
    use_case_id: str | None = None,
    setup_id: str | None = None,
    email_id: Many = [],  # noqa: B006
    event_type: Many = [],  # noqa: B006
    event_at_after: datetime | None = None,
    event_at_before: datetime | None = None,
    limit: Limit = history.DEFAULT_LIMIT,
    continuation_token: str | None = None,
) -> Response:
    ids = [_uuid(value) or uuid.UUID(int=0) for value in email_id]
    page = await history.list_events(
        session,
        scope=_scope(caller, use_case_id, setup_id),
        email_ids=ids,
        types=event_type,
        after=event_at_after,
        before=event_at_before,
        page=history.Page(limit, continuation_token),
        tokens=_tokens(request),
    )
    return _json(
        {
            "events": [
                {
                    "id": str(event.id),
                    "email_id": str(event.delivery_id) if event.delivery_id else None,
                    "event_type": event.type,
                    "event_at": _iso(event.occurred_at),
                    "received_at": _iso(event.received_at),
                }
                for event in page.events
            ],
            "has_more": page.has_more,
            "continuation_token": page.token,
        }
    )


def _email_id(email_id: str) -> uuid.UUID:
    found = _uuid(email_id)
    if found is None:
        raise NotFound("email not found")
    return found


@router.get("/{email_id}", summary="Get email detail")
async def get_email(email_id: str, session: SessionDep, caller: Viewer) -> Response:
    detail = await history.get_email(
        session, workspace_id=caller.workspace.id, email_id=_email_id(email_id)
    )
    activity = detail.activity
    return _json(
        {
            **_summary(detail.summary),
            "message_id": detail.message_id,
            "email_type": detail.email_type,
            "tier": detail.tier,
            "attachment_filenames": detail.attachment_filenames,
            "delivered_at": _iso(activity.delivered_at),
            "bounced_at": _iso(activity.bounced_at),
            "bounce_type": activity.bounce_type,
            "bounce_subtype": activity.bounce_subtype,
            "complained_at": _iso(activity.complained_at),
            "rejected_at": _iso(activity.rejected_at),
            "delivery_delay_at": _iso(activity.delivery_delay_at),
            "first_open_at": _iso(activity.first_open_at),
            "last_open_at": _iso(activity.last_open_at),
            "open_count": activity.open_count,
            "first_click_at": _iso(activity.first_click_at),
            "last_click_at": _iso(activity.last_click_at),
            "click_count": activity.click_count,
            "updated_at": _iso(detail.updated_at),
        }
    )


@router.get("/{email_id}/body", summary="Get email HTML body")
async def get_body(email_id: str, session: SessionDep, caller: Viewer) -> Response:
    html = await history.email_body(
        session, workspace_id=caller.workspace.id, email_id=_email_id(email_id)
    )
    return Response(html, media_type="text/html; charset=utf-8")


@router.get("/{email_id}/attachment/{filename}", summary="Download attachment")
async def get_attachment(
    request: Request, email_id: str, filename: str, session: SessionDep, caller: Viewer
) -> Response:
    """307 to a short-lived signed download URL that needs no other credential."""
    downloads: Downloads = request.app.state.downloads
    token = await history.attachment_link(
        session,
        workspace_id=caller.workspace.id,
        email_id=_email_id(email_id),
        filename=filename,
        downloads=downloads,
    )
    return Response(status_code=307, headers={"Location": f"{downloads_router.prefix}/{token}"})


@downloads_router.get("/{token}", summary="An attachment, by a signed download URL")
async def download(request: Request, token: str, session: SessionDep) -> Response:
    attachment = await history.download(session, token=token, downloads=request.app.state.downloads)
    return Response(
        attachment.data,
        media_type=attachment.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": content_disposition(attachment.filename),
            "Cache-Control": "private, no-store",
        },
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and RFC 6266's ``filename*`` (UTF-8)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
