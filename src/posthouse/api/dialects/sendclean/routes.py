"""Seed 003's messages API ("sendclean"): ``/messages/...`` and ``/v1.0/messages/...``.

The credentials are in the request itself: ``owner_id`` (the workspace's id), ``token``
(a workspace key with the ``send`` scope) and ``smtp_user_name`` (the key's name); any
mismatch is the document's AuthenticationError "Token MissMatch". Like every front door
this only authenticates, translates the request into a ``SendRequest`` for the shared
accept path, and renders the answers and errors in the document's shapes; the message
information comes from history.service. Choices are in docs/compatibility.md.
"""

import base64
import binascii
import hmac
import re
import uuid
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts import service as accounts_service
from posthouse.addresses import Address, shown
from posthouse.api.deps import SessionDep
from posthouse.api.dialects.sendclean.errors import ERRORS, render_error
from posthouse.api.dialects.sendclean.schemas import (
    TEMPLATE_GET_DOC,
    MessageFields,
    MessageInfoBody,
    MessageInfoList,
    SendMailBody,
    SendTemplateBody,
    Success,
    json_body_doc,
)
from posthouse.api.errors import validated
from posthouse.api.multipart import json_object
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import answer_response, front_door_route
from posthouse.db.models import Delivery
from posthouse.errors import PosthouseError, Unauthenticated, ValidationFailed
from posthouse.history import service as history
from posthouse.history.service import Hit
from posthouse.mime.text import text_to_html
from posthouse.sending import accept as accept_path
from posthouse.sending import service as sending_service
from posthouse.sending.schemas import AttachmentInput, Caller, SendRequest, TemplateChoice
from posthouse.sending.service import Accepted, SubmitOptions

API = "sendclean"
SCOPE = "send"
# The document's success messages, as it shows them.
MAIL_QUEUED = "message have been Queued ... "
TEMPLATE_QUEUED = "250 Message Queued..."
PER_PAGE = 100
# Not recorded by posthouse; the document's own placeholder.
SEND_FROM = "0.0.0.0"


async def _body(request: Request) -> dict[str, Any]:
    """The JSON body, read once (the rate limit reads its token, the route the rest)."""
    body: dict[str, Any] | None = getattr(request.state, "sendclean_body", None)
    if body is None:
        body = json_object(
            await request.body(),
            field="body",
            max_bytes=request.app.state.settings.max_request_bytes,
        )
        request.state.sendclean_body = body
    return body


async def _rate_limit(request: Request) -> None:
    """The client IP's bucket and the presented token's, as every door spends them."""
    if request.method == "GET":
        token: object = request.query_params.get("token")
    else:
        try:
            token = (await _body(request)).get("token")
        except PosthouseError:
            token = None  # the route refuses the body; the IP's bucket is spent anyway
    presented = token if isinstance(token, str) and token else None
    await rate_limited(lambda _: presented)(request)


router = APIRouter(
    tags=["seed 003: messages"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(_rate_limit)],
)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


async def _authenticate(
    request: Request,
    session: AsyncSession,
    body: dict[str, Any],
    *,
    user_name_required: bool = True,
) -> Caller:
    """owner_id + token + smtp_user_name -> the key's workspace, sending as any of its
    senders. Missing is a ValidationError; anything not matching is "Token MissMatch"."""
    for name in ("owner_id", "token", "smtp_user_name"):
        value = body.get(name)
        if name == "smtp_user_name" and value is None and not user_name_required:
            continue
        if not isinstance(value, str) or not value:
            raise ValidationFailed(f"{name} is required (a string)", field=name)
    credentials = await accounts_service.authenticate_workspace_key(
        session,
        token=body["token"],
        scope=None,
        cache=request.app.state.workspace_key_cache,
    )
    try:
        owner = uuid.UUID(body["owner_id"])
    except ValueError:
        owner = None
    user_name = body.get("smtp_user_name")
    if (
        credentials.workspace.id != owner
        or (user_name is not None and not _same(user_name, credentials.key.name))
        or not credentials.allows(SCOPE)
    ):
        raise Unauthenticated("owner_id, token and smtp_user_name do not match")
    return Caller(credentials.workspace)


_PLAIN = re.compile(r"[!-~]{1,76}")
_YES_NO = {"yes": True, "no": False}
_CLICKS = {"html": "html", "text": "text", "both": "both", "no": "none"}
# The domain controls: the SendRequest field each sets (checked in the shared pipeline).
_DOMAIN_CONTROLS = {
    "x-stes-trackingdomain": "tracking_domain",
    "x-stes-signingdomain": "signing_domain",
    "x-stes-returnpathdomain": "return_path_domain",
}


def _choice(value: str, choices: dict[str, Any], where: str) -> Any:
    found = choices.get(value.strip().lower())
    if found is None:
        raise ValidationFailed(f"{where} must be one of {'/'.join(choices)}")
    return found


def _decoded(content: str, where: str) -> bytes:
    # Line breaks and spaces in base64 are common (MIME-wrapped output); anything else
    # outside the alphabet is refused rather than skipped.
    try:
        return base64.b64decode(re.sub(r"[ \t\r\n]", "", content), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(f"{where}.content is not valid base64") from None


def _files(message: MessageFields) -> list[AttachmentInput]:
    files = [
        AttachmentInput(
            a.name, _decoded(a.content, f"message.attachments[{i}]"), content_type=a.type
        )
        for i, a in enumerate(message.attachments)
    ]
    for i, image in enumerate(message.images):
        where = f"message.images[{i}]"
        if not image.type.strip().lower().startswith("image/"):
            raise ValidationFailed(f'{where}.type must start with "image/"')
        data = _decoded(image.content, where)
        files.append(AttachmentInput(image.name, data, image.type, content_id=image.name))
    return files


def _request(
    message: MessageFields, *, html: str | None = None, text: str | None = None
) -> SendRequest:
    """The message as the shared SendRequest; the X-STes-* controls are applied here and
    never become headers of the mail."""
    send = SendRequest(
        sender=Address(message.from_email, message.from_name) if message.from_email else None,
        to=[],
        subject=message.subject,
        html=html,
        text=text,
        attachments=_files(message),
    )
    for recipient in message.to:
        kind = {"to": send.to, "cc": send.cc, "bcc": send.bcc}[recipient.type]
        kind.append(Address(recipient.email, recipient.name))
    auto_html = False
    for name, value in message.headers.items():
        key = name.lower()
        where = f"message.headers.{name if _PLAIN.fullmatch(name) else shown(name)}"
        if key == "reply-to":
            if send.reply_to:
                raise ValidationFailed(f"{where} is given twice")
            send.reply_to = [value]
        elif key == "x-stes-trackopen":
            send.track_opens = _choice(value, _YES_NO, where)
        elif key == "x-stes-trackclick":
            send.track_clicks = _choice(value, _CLICKS, where)
        elif key == "x-stes-autotext":
            send.auto_text = _choice(value, _YES_NO, where)
        elif key == "x-stes-autohtml":
            auto_html = _choice(value, _YES_NO, where)
        elif key in _DOMAIN_CONTROLS:
            field = _DOMAIN_CONTROLS[key]
            if getattr(send, field) is not None:
                raise ValidationFailed(f"{where} is given twice")
            setattr(send, field, value)
        elif key.startswith("x-stes-"):
            raise ValidationFailed(f"{where} is not a known X-STes- control")
        else:
            if key == "x-unique-id":
                send.external_id = value.strip() or None
            send.headers[name] = value
    if auto_html and not send.html and send.text:
        send.html = text_to_html(send.text)
    return send


async def _accept(
    request: Request, session: AsyncSession, caller: Caller, send: SendRequest, message: str
) -> Response:
    body = orjson.dumps({"status": "success", "message": message}).decode()

    async def action(options: SubmitOptions) -> tuple[Accepted, str]:
        accepted = await sending_service.submit(
            session, caller=caller, request=send, options=options
        )
        return accepted, body

    answer = await accept_path.accept(
        session, request.app.state.accept, caller=caller, api=API, action=action, status=200
    )
    response = answer_response(answer)
    # A send over GET must never be answered from a cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(
    "/sendMail",
    response_model=Success,
    responses=ERRORS,
    openapi_extra=json_body_doc(SendMailBody),
    summary="sendMail: send a new transactional message",
)
async def send_mail(request: Request, session: SessionDep) -> Response:
    """Queue a message to every to, cc and bcc recipient; 200 once it is stored."""
    body = await _body(request)
    caller = await _authenticate(request, session, body)
    parsed: SendMailBody = validated(SendMailBody, body)
    message = parsed.message
    if not message.html and not message.text:
        raise ValidationFailed("message.html or message.text is required")
    send = _request(message, html=message.html, text=message.text)
    return await _accept(request, session, caller, send, MAIL_QUEUED)


async def _send_template(
    request: Request, session: AsyncSession, caller: Caller, parsed: SendTemplateBody
) -> Response:
    message = parsed.message
    send = _request(message)
    send.template = TemplateChoice(message.template_id)
    send.variables = message.dynamic_value
    return await _accept(request, session, caller, send, TEMPLATE_QUEUED)


@router.post(
    "/sendTemplate",
    response_model=Success,
    responses=ERRORS,
    openapi_extra=json_body_doc(SendTemplateBody),
    summary="sendTemplate: send a new transactional message from a stored template",
)
async def send_template(request: Request, session: SessionDep) -> Response:
    """Render the template with dynamic_value and queue it; 200 once it is stored."""
    body = await _body(request)
    caller = await _authenticate(request, session, body)
    return await _send_template(request, session, caller, validated(SendTemplateBody, body))


_QUERY_FIELDS = (
    "owner_id",
    "token",
    "smtp_user_name",
    "template_id",
    "subject",
    "from_email",
    "to",
)
_DYNAMIC_VALUE = re.compile(r"dynamic_value\[(.+)\]", re.DOTALL)


def _query_fields(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The documented parameters, each at most once, and the dynamic_value[NAME] ones."""
    fields: dict[str, str] = {}
    dynamic: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        match = _DYNAMIC_VALUE.fullmatch(name)
        if match is None and name not in _QUERY_FIELDS:
            raise ValidationFailed(f"unknown parameter {shown(name)}")
        target, key = (dynamic, match.group(1)) if match else (fields, name)
        if key in target:
            raise ValidationFailed(f"{shown(name)} is given more than once")
        target[key] = value
    return fields, dynamic


@router.get(
    "/sendTemplateHTTPGet",
    response_model=Success,
    responses=ERRORS,
    openapi_extra=TEMPLATE_GET_DOC,
    summary="sendTemplateHTTPGet: send from a stored template with a GET (URL-encoded)",
)
async def send_template_get(request: Request, session: SessionDep) -> Response:
    """The document's GET for webhooks: it sends mail on every call, so it is never
    cached (docs/compatibility.md). Every value is URL-encoded in the query."""
    fields, dynamic = _query_fields(request)
    caller = await _authenticate(request, session, dict(fields))
    for name in ("template_id", "subject", "from_email", "to"):
        if not fields.get(name):
            raise ValidationFailed(f"{name} is required")
    body = {
        "owner_id": fields["owner_id"],
        "token": fields["token"],
        "smtp_user_name": fields["smtp_user_name"],
        "message": {
            "template_id": fields["template_id"],
            "subject": fields["subject"],
            "from_email": fields["from_email"],
            "to": [{"email": fields["to"], "type": "to"}],
            "dynamic_value": dynamic or None,
        },
    }
    return await _send_template(request, session, caller, validated(SendTemplateBody, body))


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _status(delivery: Delivery) -> str:
    """The copy's status in words: waiting, retrying, or what its events made it."""
    if delivery.status in ("queued", "sending", "held"):
        return "queued"
    if delivery.status == "sent":
        return delivery.state  # sent, delivered, complained
    return delivery.status  # deferred, bounced, rejected


def _hits(hits: list[Hit]) -> dict[str, list[Any]]:
    return {
        "ip": [hit.ip or "" for hit in hits],
        "ua": [hit.user_agent or "" for hit in hits],
        "time": [_ms(hit.at) for hit in hits],
    }


@router.post(
    "/getMessageInfo",
    response_model=MessageInfoList,
    responses=ERRORS,
    openapi_extra=json_body_doc(MessageInfoBody),
    summary="getMessageInfo: the messages sent with one X-Unique-Id, per recipient",
)
async def get_message_info(request: Request, session: SessionDep) -> Response:
    """Every recipient's copy of the account's messages with this X-Unique-Id, oldest
    first, 100 per page (skip_page from 0), with opens and clicks one by one."""
    body = await _body(request)
    caller = await _authenticate(request, session, body, user_name_required=False)
    parsed: MessageInfoBody = validated(MessageInfoBody, body)
    external_id = parsed.x_unique_id.strip()
    if not external_id or len(external_id) > 200:
        raise ValidationFailed("x_unique_id must be 1 to 200 characters")
    copies = await history.tagged_copies(
        session,
        workspace_id=caller.workspace.id,
        external_id=external_id,
        page=parsed.skip_page,
        per_page=PER_PAGE,
    )
    data = [
        {
            "subject": copy.message.subject,
            "sender": copy.message.from_email,
            "email": copy.delivery.recipient,
            "sendFrom": SEND_FROM,
            "mailSize": copy.content_bytes,
            "attchSize": copy.attachment_bytes,
            "status": _status(copy.delivery),
            "time": _ms(copy.message.created_at),
            "open": len(copy.opens),
            "openData": _hits(copy.opens),
            "clickData": _hits(copy.clicks),
            "click": len(copy.clicks),
        }
        for copy in copies
    ]
    return Response(
        orjson.dumps({"status": "success", "message_data": data}),
        media_type="application/json",
    )
