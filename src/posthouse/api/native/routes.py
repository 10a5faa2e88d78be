"""The native API (seed 000): multipart sends and replies with sender-bound token pairs.

Like every front door it only authenticates (a ``Caller``), translates the request into a
``SendRequest``, calls the accept path (``sending.accept``) and renders the answer and the
errors in its own shape (``api.native.errors``).
"""

from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from posthouse.accounts import service as accounts_service
from posthouse.addresses import Address
from posthouse.api.deps import SessionDep
from posthouse.api.errors import validated
from posthouse.api.multipart import MultipartSend, read_multipart_send
from posthouse.api.native.errors import ERRORS, SenderNotRegistered, render_error
from posthouse.api.native.schemas import (
    TOKEN_HEADERS,
    EmailAccepted,
    EmailDetail,
    ReplyAccepted,
    ReplyEmailPayload,
    SendEmailPayload,
    multipart_doc,
)
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import answer_response, front_door_route
from posthouse.db.models import Message
from posthouse.errors import SenderNotFound, Unauthenticated
from posthouse.history import service as history_service
from posthouse.history.service import RecipientHistory
from posthouse.sending import accept as accept_path
from posthouse.sending import service as sending_service
from posthouse.sending.accept import Action, IdempotencyKey
from posthouse.sending.ids import reference_id
from posthouse.sending.schemas import AttachmentInput, Caller, SendRequest, TemplateChoice
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import DEFAULT_LIMITS

API = "native"


def access_token_of(request: Request) -> str | None:
    return request.headers.get("x-api-access-token")


router = APIRouter(
    prefix="/api/v1/emails",
    tags=["emails"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(access_token_of))],
)


async def credentials(request: Request, session: SessionDep) -> Caller:
    access_token = access_token_of(request)
    secret_token = request.headers.get("x-api-secret-token")
    if not access_token or not secret_token:
        raise Unauthenticated("X-Api-Access-Token and X-Api-Secret-Token headers are required")
    found = await accounts_service.authenticate_sender(
        session,
        access_token=access_token,
        secret_token=secret_token,
        cache=request.app.state.credential_cache,
    )
    return Caller(found.workspace, found.sender)


CallerDep = Annotated[Caller, Depends(credentials)]


def _request_from(
    payload: SendEmailPayload | ReplyEmailPayload, files: list[AttachmentInput]
) -> SendRequest:
    request = SendRequest(
        sender=payload.from_ if isinstance(payload, SendEmailPayload) else None,
        to=list(payload.to or []),
        cc=list(payload.cc or []),
        bcc=list(payload.bcc or []),
        reply_to=list(payload.replyTo or []),
        subject=payload.subject if isinstance(payload, SendEmailPayload) else None,
        html=payload.body,
        text=payload.text,
        headers=dict(payload.headers or {}),
        attachments=[replace(f, track=True) for f in files] if payload.trackAttachments else files,
        track_opens=payload.trackOpens,
        track_clicks=payload.trackClicks,
        unsubscribe=payload.unsubscribe,
        unsubscribe_redirect_url=payload.unsubscribeRedirectUrl,
        auto_text=payload.autoText is not False,
        signing_domain=payload.signingDomain,
        return_path_domain=payload.returnPathDomain,
        tracking_domain=payload.trackingDomain,
    )
    if isinstance(payload, SendEmailPayload):
        if payload.template is not None:
            request.template = TemplateChoice(payload.template, payload.templateVersion)
        request.variables = payload.variables
        request.recipient_variables = payload.recipientVariables
    return request


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


async def _accept(
    request: Request, caller: Caller, form: MultipartSend, action: Action
) -> Response:
    """The accept path under the request's Idempotency-Key, if any, as a 202 response."""
    key = request.headers.get("idempotency-key")
    answer = await accept_path.accept(
        request.state.session,
        request.app.state.accept,
        caller=caller,
        api=API,
        action=action,
        key=None
        if key is None
        else IdempotencyKey(
            key,
            accept_path.request_fingerprint(
                request.method,
                request.url.path,
                request.url.query,
                form.payload,
                form.attachments,
            ),
        ),
    )
    return answer_response(answer)


@router.post(
    "",
    status_code=202,
    response_model=EmailAccepted,
    responses=ERRORS,
    openapi_extra=multipart_doc(SendEmailPayload),
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
    payload = validated(SendEmailPayload, form.payload)

    async def send(options: SubmitOptions) -> tuple[Accepted, str]:
        accepted = await sending_service.submit(
            session,
            caller=caller,
            request=_request_from(payload, form.attachments),
            options=options,
        )
        return accepted, _json(_accepted_body(accepted))

    return await _accept(request, caller, form, send)


@router.post(
    "/reply",
    status_code=202,
    response_model=ReplyAccepted,
    responses=ERRORS,
    openapi_extra=multipart_doc(ReplyEmailPayload),
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
    payload = validated(ReplyEmailPayload, form.payload)

    async def reply(options: SubmitOptions) -> tuple[Accepted, str]:
        try:
            result = await sending_service.reply_to_subject(
                session,
                caller=caller,
                from_email=from_,
                subject=subject,
                request=_request_from(payload, form.attachments),
                options=options,
            )
        except SenderNotFound:
            raise SenderNotRegistered() from None
        body = _accepted_body(result.accepted, result.original, reply=True)
        return result.accepted, _json(body)

    return await _accept(request, caller, form, reply)


@router.post(
    "/{referenceId}/reply",
    status_code=202,
    response_model=ReplyAccepted,
    responses=ERRORS,
    openapi_extra=multipart_doc(ReplyEmailPayload),
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
    payload = validated(ReplyEmailPayload, form.payload)

    async def reply(options: SubmitOptions) -> tuple[Accepted, str]:
        result = await sending_service.reply_to_reference(
            session,
            caller=caller,
            reference_id=referenceId,
            request=_request_from(payload, form.attachments),
            options=options,
        )
        body = _accepted_body(result.accepted, result.original, reply=True)
        return result.accepted, _json(body)

    return await _accept(request, caller, form, reply)


def _recipient(recipient: RecipientHistory) -> dict[str, Any]:
    delivery = recipient.delivery
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
        "failureClass": delivery.failure_class,
        "failureSubclass": delivery.failure_subclass,
        "state": delivery.state,
        "openCount": recipient.activity.open_count,
        "clickCount": recipient.activity.click_count,
        "events": [
            {
                "id": str(event.id),
                "type": event.type,
                "eventAt": event.occurred_at,
                "receivedAt": event.received_at,
                "data": event.data,
            }
            for event in recipient.events
        ],
    }


@router.get(
    "/{referenceId}",
    response_model=EmailDetail,
    responses=ERRORS,
    openapi_extra={"parameters": TOKEN_HEADERS},
    summary="Get an email and where its deliveries are",
)
async def get_email(referenceId: str, session: SessionDep, caller: CallerDep) -> JSONResponse:
    """The email as accepted and, per recipient, its delivery status, attempts, the last
    SMTP reply, its derived state, open and click counts and its events in order."""
    message, deliveries = await sending_service.get_message(
        session, caller=caller, reference_id=referenceId
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
            "recipients": [
                _recipient(r)
                for r in await history_service.recipients_history(session, deliveries=deliveries)
            ],
        }
    )
    return JSONResponse(detail.model_dump(mode="json", by_alias=True))
