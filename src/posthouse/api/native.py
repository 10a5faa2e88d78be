"""The native API (seed 000): multipart sends and replies with sender-bound token pairs.

Like every front door it only authenticates, translates and maps errors; the rules live
in sending.service and what it calls.
"""

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from posthouse.accounts import service as accounts_service
from posthouse.accounts.service import SenderCredentials
from posthouse.api.deps import SessionDep
from posthouse.api.errors import validation_failed
from posthouse.api.multipart import MultipartSend, read_multipart_send
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import front_door_route
from posthouse.config import Settings
from posthouse.db.models import Delivery, Message
from posthouse.errors import (
    IdempotencyInFlight,
    PosthouseError,
    RateLimited,
    RecipientsSuppressed,
    Unauthenticated,
)
from posthouse.protections import idempotency
from posthouse.sending import service as sending_service
from posthouse.sending.addresses import Address
from posthouse.sending.ids import reference_id
from posthouse.sending.schemas import AttachmentInput, SendRequest
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import DEFAULT_LIMITS


def render_error(error: PosthouseError) -> JSONResponse:
    body: dict[str, Any] = {"status": error.status_code, "message": error.detail}
    headers = {}
    if isinstance(error, RecipientsSuppressed):
        body["suppressed"] = error.addresses
    if isinstance(error, RateLimited | IdempotencyInFlight):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def _access_token(request: Request) -> str | None:
    return request.headers.get("x-api-access-token")


router = APIRouter(
    prefix="/api/v1/emails",
    tags=["emails"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(_access_token))],
)

# The token and Idempotency-Key headers are read from request.headers and documented
# here: FastAPI's extraction of header parameters cost ~4% of the api's instructions per
# accepted send.
TOKEN_HEADERS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": f"The {what} token issued with the sender (posthouse sender add)",
    }
    for name, what in (("X-Api-Access-Token", "access"), ("X-Api-Secret-Token", "secret"))
]
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "1 to 256 visible characters; the same request again within 24 hours "
    "returns the original response (Idempotency-Replayed: true) and sends nothing",
}


class SendEmailPayload(BaseModel):
    """The JSON ``payload`` part of ``POST /api/v1/emails``."""

    model_config = ConfigDict(populate_by_name=True, strict=True)

    from_: str | None = Field(None, alias="from", description="Sender, bound to the tokens")
    to: list[str] = Field(default_factory=list, description="1 to 1000 addresses")
    cc: list[str] | None = Field(None, description="At most 50 addresses")
    bcc: list[str] | None = Field(None, description="At most 50; never shown in headers")
    replyTo: list[str] | None = Field(None, description="At most 50 addresses")
    subject: str | None = Field(None, description="Required, 1 to 998 characters")
    body: str | None = Field(None, description="Required HTML body; a text part is derived")
    text: str | None = Field(None, description="Optional plain-text alternative")
    headers: dict[str, str] | None = Field(None, description="Extra headers (X-...)")


class ReplyEmailPayload(BaseModel):
    """The JSON ``payload`` part of the reply endpoints."""

    model_config = ConfigDict(strict=True)

    to: list[str] | None = Field(None, description="Defaults as documented per endpoint")
    cc: list[str] | None = None
    bcc: list[str] | None = None
    replyTo: list[str] | None = None
    body: str | None = Field(None, description="Required HTML body")
    text: str | None = None
    headers: dict[str, str] | None = None


class EmailAccepted(BaseModel):
    """The email as queued (attachments omitted)."""

    referenceId: str = Field(description="ema_ followed by a ULID")
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    replyTo: list[str]
    subject: str
    body: str | None
    suppressed: list[str] | None = Field(None, description="Recipients not sent to, if any")


class ReplyAccepted(BaseModel):
    """The reply as queued (attachments omitted)."""

    referenceId: str = Field(description="ema_ followed by a ULID")
    originalReferenceId: str | None = Field(
        description="The email replied to; null when reply-by-subject started a new thread"
    )
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str] | None = Field(None, description="Present when the reply has cc")
    bcc: list[str] | None = Field(None, description="Present when the reply has bcc")
    replyTo: list[str] | None = Field(None, description="Present when the reply has replyTo")
    subject: str = Field(description="The original subject with exactly one 'Re: '")
    body: str | None
    suppressed: list[str] | None = Field(None, description="Recipients not sent to, if any")


class ErrorBody(BaseModel):
    status: int
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Validation error, monthly quota exceeded, or access suspended",
        401: "Token headers missing",
        404: "Sender not registered with these tokens, or email not found",
        409: "Idempotency key reused or in flight; sending domain not verified",
        413: "Request, attachment or message too large",
        422: "Attachment refused, or every recipient suppressed",
        429: "Rate limited",
    }.items()
}


def _multipart_doc(payload: type[BaseModel]) -> dict[str, Any]:
    schema = payload.model_json_schema(by_alias=True)
    return {
        "parameters": [*TOKEN_HEADERS, IDEMPOTENCY_HEADER],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["payload"],
                        "properties": {
                            "payload": schema,
                            "attachments": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                        },
                    },
                    "encoding": {"payload": {"contentType": "application/json"}},
                }
            },
        },
    }


async def credentials(request: Request, session: SessionDep) -> SenderCredentials:
    access_token = _access_token(request)
    secret_token = request.headers.get("x-api-secret-token")
    if not access_token or not secret_token:
        raise Unauthenticated("X-Api-Access-Token and X-Api-Secret-Token headers are required")
    return await accounts_service.authenticate_sender(
        session,
        access_token=access_token,
        secret_token=secret_token,
        cache=request.app.state.credential_cache,
    )


CallerDep = Annotated[SenderCredentials, Depends(credentials)]


def _options(request: Request, *, last_write: bool) -> SubmitOptions:
    settings: Settings = request.app.state.settings
    return SubmitOptions(
        queue_lifetime=timedelta(seconds=settings.queue_lifetime_seconds),
        api="native",
        require_verified_domain=settings.require_verified_domains,
        verified_domains=request.app.state.verified_domains,
        last_write=last_write,
    )


def _parse(model: type[BaseModel], payload: dict[str, Any]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise validation_failed(error.errors()) from None


def _request_from(
    payload: SendEmailPayload | ReplyEmailPayload, files: list[AttachmentInput]
) -> SendRequest:
    return SendRequest(
        sender=payload.from_ if isinstance(payload, SendEmailPayload) else None,
        to=list(payload.to or []),
        cc=list(payload.cc or []),
        bcc=list(payload.bcc or []),
        reply_to=list(payload.replyTo or []),
        subject=payload.subject if isinstance(payload, SendEmailPayload) else None,
        html=payload.body,
        text=payload.text,
        headers=dict(payload.headers or {}),
        attachments=files,
    )


def _formatted(addresses: list[dict[str, Any]]) -> list[str]:
    return [Address(a["email"], a.get("name")).formatted() for a in addresses]


def _accepted_body(
    accepted: Accepted, original: Message | None = None, *, reply: bool = False
) -> dict[str, Any]:
    message = accepted.message
    body: dict[str, Any] = {"referenceId": reference_id(message.id)}
    if reply:
        body["originalReferenceId"] = reference_id(original.id) if original else None
    body["from"] = Address(message.from_email, message.from_name).formatted()
    body["to"] = _formatted(message.to)
    # Seed 000's reply bodies have no cc/bcc/replyTo: a reply shows them only when given.
    for key, addresses in (("cc", message.cc), ("bcc", message.bcc), ("replyTo", message.reply_to)):
        if addresses or not reply:
            body[key] = _formatted(addresses)
    body["subject"] = message.subject
    body["body"] = message.html if message.html is not None else message.text
    if accepted.suppressed:
        body["suppressed"] = accepted.suppressed
    return body


def _json(body: dict[str, Any]) -> str:
    # Byte for byte what JSONResponse writes (json.dumps, ensure_ascii=False, no spaces),
    # at a fraction of the cost for a body that echoes the email's HTML.
    return orjson.dumps(body).decode()


def _accepted_response(request: Request, content: str) -> Response:
    worker = getattr(request.app.state, "worker", None)
    # Wake an in-process worker once the response (and so the commit) is done.
    background = BackgroundTask(worker.wakeup.set) if worker is not None else None
    return Response(content, status_code=202, media_type="application/json", background=background)


async def _accept_once(
    request: Request,
    session: AsyncSession,
    caller: SenderCredentials,
    form: MultipartSend,
    accept: Callable[[SubmitOptions], Awaitable[tuple[Accepted, dict[str, Any]]]],
) -> Response:
    """Run ``accept`` under the request's Idempotency-Key, when it has one."""
    key = request.headers.get("idempotency-key")
    # Without a key nothing is written after the message; with one, its response is.
    options = _options(request, last_write=key is None)

    async def accepted_json() -> tuple[str, uuid.UUID | None]:
        accepted, body = await accept(options)
        return _json(body), accepted.message.id

    if key is None:
        return _accepted_response(request, (await accepted_json())[0])
    request_hash = idempotency.fingerprint(
        request.method,
        request.url.path,
        request.url.query,
        json.dumps(form.payload, sort_keys=True),
        *(
            f"{a.filename}\x00{a.content_type}\x00{hashlib.sha256(a.data).hexdigest()}"
            for a in form.attachments
        ),
    )
    outcome = await idempotency.once(
        session,
        workspace_id=caller.workspace.id,
        scope="native",
        key=key,
        request_hash=request_hash,
        status=202,
        accept=accepted_json,
    )
    if isinstance(outcome, idempotency.Replay):
        return Response(
            outcome.body,
            status_code=outcome.status,
            media_type="application/json",
            headers={"Idempotency-Replayed": "true"},
        )
    return _accepted_response(request, outcome)


@router.post(
    "",
    status_code=202,
    response_model=EmailAccepted,
    responses=ERRORS,
    openapi_extra=_multipart_doc(SendEmailPayload),
    summary="Send an email",
)
async def send_email(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
) -> Response:
    """Create an email and queue one delivery per recipient; 202 once it is stored.
    Suppressed recipients are left out and named in ``suppressed``."""
    form = await read_multipart_send(request, max_files=DEFAULT_LIMITS.max_attachments)
    payload = _parse(SendEmailPayload, form.payload)

    async def accept(options: SubmitOptions) -> tuple[Accepted, dict[str, Any]]:
        accepted = await sending_service.submit(
            session,
            credentials=caller,
            request=_request_from(payload, form.attachments),
            options=options,
        )
        return accepted, _accepted_body(accepted)

    return await _accept_once(request, session, caller, form, accept)


@router.post(
    "/reply",
    status_code=202,
    response_model=ReplyAccepted,
    responses=ERRORS,
    openapi_extra=_multipart_doc(ReplyEmailPayload),
    summary="Reply to the latest email with a subject",
)
async def reply_by_subject(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    from_: Annotated[str, Query(alias="from", description="The sender that owns the tokens")],
    subject: Annotated[str, Query(description="Subject to match; Re: prefixes are ignored")],
) -> Response:
    """Reply in the thread of the sender's most recent email with this subject, or start
    a new thread when there is none. ``to`` defaults to the sender itself."""
    form = await read_multipart_send(request, max_files=DEFAULT_LIMITS.max_attachments)
    payload = _parse(ReplyEmailPayload, form.payload)

    async def accept(options: SubmitOptions) -> tuple[Accepted, dict[str, Any]]:
        result = await sending_service.reply_to_subject(
            session,
            credentials=caller,
            from_email=from_,
            subject=subject,
            request=_request_from(payload, form.attachments),
            options=options,
        )
        return result.accepted, _accepted_body(result.accepted, result.original, reply=True)

    return await _accept_once(request, session, caller, form, accept)


@router.post(
    "/{referenceId}/reply",
    status_code=202,
    response_model=ReplyAccepted,
    responses=ERRORS,
    openapi_extra=_multipart_doc(ReplyEmailPayload),
    summary="Reply to an email",
)
async def reply_by_reference(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    referenceId: str,
) -> Response:
    """Reply in the thread of an earlier email; ``to`` defaults to its sender."""
    form = await read_multipart_send(request, max_files=DEFAULT_LIMITS.max_attachments)
    payload = _parse(ReplyEmailPayload, form.payload)

    async def accept(options: SubmitOptions) -> tuple[Accepted, dict[str, Any]]:
        result = await sending_service.reply_to_reference(
            session,
            credentials=caller,
            reference_id=referenceId,
            request=_request_from(payload, form.attachments),
            options=options,
        )
        return result.accepted, _accepted_body(result.accepted, result.original, reply=True)

    return await _accept_once(request, session, caller, form, accept)


class RecipientStatus(BaseModel):
    email: str
    type: str = Field(description="to, cc or bcc")
    status: str = Field(description="queued, sending, deferred, sent, bounced, rejected, held")
    attempts: int
    lastAttemptAt: datetime | None
    nextAttemptAt: datetime | None
    sentAt: datetime | None
    lastSmtpCode: int | None
    lastSmtpReply: str | None


class AttachmentInfo(BaseModel):
    filename: str
    contentType: str
    size: int


class EmailDetail(BaseModel):
    referenceId: str
    originalReferenceId: str | None
    messageId: str
    from_: str = Field(alias="from")
    to: list[str]
    cc: list[str]
    bcc: list[str]
    replyTo: list[str]
    subject: str
    body: str | None
    text: str | None
    createdAt: datetime
    attachments: list[AttachmentInfo]
    recipients: list[RecipientStatus]


def _recipient(delivery: Delivery) -> dict[str, Any]:
    pending = delivery.status in ("queued", "deferred")
    return {
        "email": delivery.recipient,
        "type": delivery.kind,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastAttemptAt": delivery.last_attempt_at,
        "nextAttemptAt": delivery.next_attempt_at if pending else None,
        "sentAt": delivery.sent_at,
        "lastSmtpCode": delivery.last_smtp_code,
        "lastSmtpReply": delivery.last_smtp_reply,
    }


@router.get(
    "/{referenceId}",
    response_model=EmailDetail,
    responses=ERRORS,
    openapi_extra={"parameters": TOKEN_HEADERS},
    summary="Get an email and where its deliveries are",
)
async def get_email(referenceId: str, session: SessionDep, caller: CallerDep) -> JSONResponse:
    """The email as accepted and, per recipient, its delivery status, attempts and the last
    SMTP reply."""
    message, deliveries = await sending_service.get_message(
        session, credentials=caller, reference_id=referenceId
    )
    attachments = await sending_service.attachment_summaries(session, message_id=message.id)
    detail = EmailDetail.model_validate(
        {
            "referenceId": reference_id(message.id),
            "originalReferenceId": reference_id(message.original_message_id)
            if message.original_message_id
            else None,
            "messageId": message.message_id_header,
            "from": Address(message.from_email, message.from_name).formatted(),
            "to": _formatted(message.to),
            "cc": _formatted(message.cc),
            "bcc": _formatted(message.bcc),
            "replyTo": _formatted(message.reply_to),
            "subject": message.subject,
            "body": message.html,
            "text": message.text,
            "createdAt": message.created_at,
            "attachments": [
                {"filename": a.filename, "contentType": a.content_type, "size": a.size}
                for a in attachments
            ],
            "recipients": [_recipient(d) for d in deliveries],
        }
    )
    return JSONResponse(detail.model_dump(mode="json", by_alias=True))
