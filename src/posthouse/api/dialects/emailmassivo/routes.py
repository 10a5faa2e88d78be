"""Seed 001's email API ("emailmassivo"): ``POST /api/v1/external-mails/send`` and
``/send-by-template`` with ``X-Api-Key``.

Like every front door this only authenticates (a workspace key: ``Caller(workspace)``),
translates the JSON body into the shared ``SendRequest`` and calls the accept path; its
answers and errors are in its own shapes (``errors.py``). Each recipient is one "mail"
with its own uuid (the delivery's id): ``uuid`` is the one to ``mail.to``, and each cc
and bcc address gets a uuid, or an error, in ``additionalRecipients``.
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts import service as accounts_service
from posthouse.accounts import tokens
from posthouse.addresses import (
    MAX_ENTRY,
    Address,
    has_bidi_controls,
    has_control_characters,
    parse_address,
    shown,
)
from posthouse.api.deps import SessionDep
from posthouse.api.dialects.emailmassivo.errors import (
    ERRORS,
    SUPPRESSION_MESSAGES,
    UNAVAILABLE_RECEIVER,
    ApiKeyNotFound,
    render_error,
)
from posthouse.api.dialects.emailmassivo.schemas import (
    ExternalMailAccepted,
    SendBody,
    TemplateBody,
    json_body_doc,
)
from posthouse.api.errors import validated
from posthouse.api.multipart import MAX_JSON_DEPTH, json_object
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import answer_response, front_door_route
from posthouse.config import Settings
from posthouse.errors import (
    AttachmentRejected,
    Forbidden,
    RecipientsSuppressed,
    Unauthenticated,
    ValidationFailed,
)
from posthouse.protections import idempotency, suppression
from posthouse.sending import accept as accept_path
from posthouse.sending import service as sending_service
from posthouse.sending.accept import IdempotencyKey
from posthouse.sending.schemas import AttachmentInput, Caller, SendRequest, TemplateChoice
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import DEFAULT_LIMITS

API = "emailmassivo"
SEND_SCOPE = "send"
WARNING = (
    "idempotencyKey was not provided: an identical request within one hour returns this "
    "uuid and sends nothing"
)
INVALID_ADDRESS = "Invalid email address"
MAX_KEY = 256
# "The request accepts any system headers, but those set by us have priority": the
# caller's values of these are never sent.
SERVICE_HEADERS = frozenset(
    {
        "return-path", "list-unsubscribe", "errors-to", "x-complaints-to", "precedence",
        "feedback-id", "x-sendername-mailid", "x-mailru-msgtype", "x-postmaster-msgtype",
    }
)  # fmt: skip
# A cc/bcc entry that is one plain token: if it is no valid address, that recipient alone
# gets an error. Anything with a name, quotes, brackets, controls is parsed strictly and
# refuses the whole request when it is ambiguous.
_PLAIN = re.compile(r'[^\s<>"(),;:\\\[\]]+')
_WHITESPACE = re.compile(rb"\s+")


def api_key_of(request: Request) -> str | None:
    return request.headers.get("x-api-key")


def _door_ip_rate(settings: Settings) -> float | None:
    return settings.emailmassivo_rate_limit_per_ip


router = APIRouter(
    prefix="/api/v1/external-mails",
    tags=["seed 001: external mails"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(api_key_of, door_ip_rate=_door_ip_rate, door=API))],
)


async def credentials(request: Request, session: SessionDep) -> Caller:
    """A workspace key with the send scope; it sends as any sender of its workspace."""
    key = api_key_of(request)
    if not key:
        raise Unauthenticated("X-Api-Key is required")
    try:
        found = await accounts_service.authenticate_workspace_key(
            session, token=key, scope=None, cache=request.app.state.workspace_key_cache
        )
    except Unauthenticated:
        if tokens.split_workspace_key(key) is None:
            raise
        raise ApiKeyNotFound() from None
    if not found.allows(SEND_SCOPE):
        raise Forbidden(f"this key lacks the {SEND_SCOPE} scope")
    return Caller(found.workspace)


CallerDep = Annotated[Caller, Depends(credentials)]
Body = TypeVar("Body", bound=BaseModel)


def _parse(request: Request, request_body: bytes, model: type[Body]) -> Body:
    payload = json_object(
        request_body,
        field="body",
        # Files travel inside it as base64: the request's own limit bounds it.
        max_bytes=request.app.state.settings.max_request_bytes,
        max_depth=MAX_JSON_DEPTH,
    )
    return validated(model, payload)


@dataclass(frozen=True)
class Additional:
    """One cc or bcc address as given: parsed, or the error that recipient alone gets."""

    given: str
    address: Address | None
    error: str | None = None


def split_addresses(text: str) -> list[str]:
    """The comma-separated entries of ``text``; commas inside quotes or <...> stay."""
    entries: list[str] = []
    start, quoted, escaped, angle = 0, False, False, False
    for position, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char == "," and not quoted and not angle:
            entries.append(text[start:position])
            start = position + 1
    entries.append(text[start:])
    return [entry.strip() for entry in entries if entry.strip()]


def _additional(value: Any, *, field: str, limit: int) -> list[Additional]:
    if value is None:
        return []
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        texts = value
    else:
        raise ValidationFailed(f"{field} must be a string of addresses", field=field)
    # Bounded before splitting: the split is a loop over every character.
    if sum(len(text) for text in texts) > limit * (MAX_ENTRY + 2):
        raise ValidationFailed(f"{field} accepts at most {limit} addresses", field=field)
    entries = [entry for text in texts for entry in split_addresses(text)]
    if len(entries) > limit:
        raise ValidationFailed(f"{field} accepts at most {limit} addresses", field=field)
    result = []
    for entry in entries:
        try:
            result.append(Additional(entry, parse_address(entry, field=field)))
        except ValidationFailed:
            plain = (
                _PLAIN.fullmatch(entry)
                and len(entry) <= MAX_ENTRY
                and not has_control_characters(entry)
                and not has_bidi_controls(entry)
            )
            if not plain:
                raise
            result.append(Additional(entry, None, INVALID_ADDRESS))
    return result


def _caller_headers(headers: Any) -> Any:
    if not isinstance(headers, dict):
        return headers  # the shared validation refuses it, with its reason
    return {name: value for name, value in headers.items() if name.lower() not in SERVICE_HEADERS}


def _attachments(value: Any) -> list[AttachmentInput]:
    """``[{"name.ext": "<base64>"}, ...]`` as files; anything else is "parse failed"."""
    if value is None:
        return []
    shape = 'attachments must be a list of {"filename": "<base64>"} objects'
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise AttachmentRejected(shape)
    pairs = [pair for item in value for pair in item.items()]
    if len(pairs) > DEFAULT_LIMITS.max_attachments:
        raise AttachmentRejected(f"at most {DEFAULT_LIMITS.max_attachments} attachments")
    files = []
    for name, data in pairs:
        if not isinstance(data, str):
            raise AttachmentRejected(shape)
        try:
            decoded = base64.b64decode(_WHITESPACE.sub(b"", data.encode("ascii")), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise AttachmentRejected(f"attachment {shown(name)} is not valid base64") from None
        files.append(AttachmentInput(filename=name, data=decoded))
    return files


def _send_request(body: SendBody | TemplateBody) -> tuple[SendRequest, list[Additional]]:
    mail = body.mail
    cc = _additional(mail.cc, field="cc", limit=DEFAULT_LIMITS.max_cc)
    bcc = _additional(mail.bcc, field="bcc", limit=DEFAULT_LIMITS.max_bcc)
    request = SendRequest(
        sender=Address(mail.from_.email, mail.from_.name),
        to=[Address(mail.to.email, mail.to.name)],
        subject=mail.subject or None,
        cc=[entry.address for entry in cc if entry.address is not None],
        bcc=[entry.address for entry in bcc if entry.address is not None],
        headers=_caller_headers(mail.headers),
        attachments=_attachments(mail.attachments),
        preheader=mail.previewTitle or None,
    )
    if isinstance(body, TemplateBody):
        request.template = TemplateChoice(body.mail.idTemplateMailUser)
        request.variables = body.mail.params or {}
    else:
        request.html = body.mail.html
        # "generates text similar to html if text is not passed (or an empty string)"
        request.text = body.mail.text or None
    return request, cc + bcc


async def _answer(
    session: AsyncSession, caller: Caller, accepted: Accepted, additional: list[Additional]
) -> dict[str, Any]:
    ids = {delivery.recipient.lower(): str(delivery.id) for delivery in accepted.deliveries}
    to = accepted.send.to[0].email
    if to.lower() not in ids:
        # An identical earlier email (the one-hour rule) that another door accepted while
        # its "to" was suppressed: this door has no uuid to answer with.
        reasons = await suppression.reasons(
            session, workspace_id=caller.workspace.id, addresses=[to]
        )
        raise RecipientsSuppressed(f"{to} is suppressed", addresses=[to], reasons=reasons)
    answer: dict[str, Any] = {"uuid": ids[to.lower()]}
    if additional:
        left_out = [
            entry.address.email
            for entry in additional
            if entry.address is not None and entry.address.email.lower() not in ids
        ]
        reasons = (
            await suppression.reasons(session, workspace_id=caller.workspace.id, addresses=left_out)
            if left_out
            else {}
        )
        answer["additionalRecipients"] = [
            _additional_answer(entry, ids, reasons) for entry in additional
        ]
    return answer


def _additional_answer(
    entry: Additional, ids: dict[str, str], reasons: dict[str, suppression.SuppressionReason]
) -> dict[str, str]:
    if entry.address is None:
        return {"email": entry.given, "error": entry.error or INVALID_ADDRESS}
    email = entry.address.email
    if email.lower() in ids:
        return {"email": email, "uuid": ids[email.lower()]}
    reason = reasons.get(email)
    message = SUPPRESSION_MESSAGES.get(str(reason), UNAVAILABLE_RECEIVER)
    return {"email": email, "error": message}


def _stored_key(key: str, fingerprint: str) -> str:
    """The shared idempotency layer's key for this request: seed 001 sends again when the
    parameters differ under the same key, so the key stands for (key, request)."""
    return "em1:" + hashlib.sha256(f"{key}\x00{fingerprint}".encode()).hexdigest()


async def _accept(
    request: Request, session: SessionDep, caller: Caller, body: SendBody | TemplateBody
) -> Response:
    key = body.idempotencyKey or None
    if key is not None and len(key) > MAX_KEY:
        raise ValidationFailed(
            f"idempotencyKey is longer than {MAX_KEY} characters", field="idempotencyKey"
        )
    send, additional = _send_request(body)

    async def action(options: SubmitOptions) -> tuple[Accepted, str]:
        options.required_kinds = frozenset({"to"})
        if key is None:
            options.duplicate_window = idempotency.DUPLICATE_WINDOW
        accepted = await sending_service.submit(
            session, caller=caller, request=send, options=options
        )
        answer = await _answer(session, caller, accepted, additional)
        if key is None:
            answer["warning"] = WARNING
        return accepted, orjson.dumps(answer).decode()

    fingerprint = accept_path.request_fingerprint(
        request.method, request.url.path, "", body.model_dump(mode="json", by_alias=True)
    )
    answer = await accept_path.accept(
        session,
        request.app.state.accept,
        caller=caller,
        api=API,
        action=action,
        key=None if key is None else IdempotencyKey(_stored_key(key, fingerprint), fingerprint),
        status=200,
    )
    return answer_response(answer)


@router.post(
    "/send",
    response_model=ExternalMailAccepted,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=json_body_doc(SendBody),
    summary="Send an email (with ready HTML)",
)
async def send_mail(request: Request, session: SessionDep, caller: CallerDep) -> Response:
    """Queue the email to mail.to and a copy to each cc and bcc address; 200 once stored."""
    body = _parse(request, await request.body(), SendBody)
    return await _accept(request, session, caller, body)


@router.post(
    "/send-by-template",
    response_model=ExternalMailAccepted,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=json_body_doc(TemplateBody),
    summary="Send an email with a template",
)
async def send_by_template(request: Request, session: SessionDep, caller: CallerDep) -> Response:
    """Render the stored template idTemplateMailUser with params, and queue it as /send."""
    body = _parse(request, await request.body(), TemplateBody)
    return await _accept(request, session, caller, body)
