"""Seed 002's transactional mail API ("everlytic"): ``POST /transactional/email/v1/mail``.

HTTP Basic with the workspace's name and one of its keys (``posthouse key create``).
Like every front door this only authenticates, translates the JSON body into a
``SendRequest`` and answers in its own shapes: the shared accept path validates, applies
the protections, renders templates and stores the message with one delivery per
recipient, whose ids are the document's transaction ids. Choices where the document is
vague are in docs/compatibility.md ("Seed 002").
"""

import base64
import binascii
import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from posthouse.accounts import service as accounts_service
from posthouse.addresses import Address
from posthouse.api import documented
from posthouse.api.deps import SessionDep
from posthouse.api.dialects.everlytic.errors import ERRORS, UnknownSendingDomain, render_error
from posthouse.api.dialects.everlytic.schemas import (
    Contact,
    MailAccepted,
    MailAttachments,
    MailRequest,
)
from posthouse.api.multipart import json_object
from posthouse.api.rate_limits import rate_limited
from posthouse.api.routing import answer_response, front_door_route
from posthouse.errors import Forbidden, SenderNotFound, Unauthenticated, ValidationFailed
from posthouse.sending import accept as accept_path
from posthouse.sending import service as sending_service
from posthouse.sending.accept import IdempotencyKey
from posthouse.sending.schemas import AttachmentInput, Caller, SendRequest, TemplateChoice
from posthouse.sending.service import Accepted, SubmitOptions
from posthouse.sending.validation import SendLimits

API = "everlytic"
SEND_SCOPE = "send"
# The document: "Each custom header key should start with X-".
LIMITS = SendLimits(custom_header_prefix="X-")


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The (username, password) of ``Authorization: Basic ...``, None when there is none
    or it does not decode."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon and password else None


def basic_password(request: Request) -> str | None:
    pair = basic_credentials(request)
    return pair[1] if pair else None


router = APIRouter(
    prefix="/transactional/email/v1",
    tags=["seed 002: transactional email"],
    route_class=front_door_route(render_error),
    dependencies=[Depends(rate_limited(basic_password))],
)


async def credentials(request: Request, session: SessionDep) -> Caller:
    """The workspace whose name is the username and whose key is the password."""
    pair = basic_credentials(request)
    if pair is None:
        raise Unauthenticated("HTTP Basic credentials are required")
    username, key = pair
    found = await accounts_service.authenticate_workspace_key(
        session, token=key, scope=None, cache=request.app.state.workspace_key_cache
    )
    if not hmac.compare_digest(found.workspace.name.encode(), username.encode()):
        raise Unauthenticated("invalid API key")
    if not found.allows(SEND_SCOPE):
        raise Forbidden(f"this key lacks the {SEND_SCOPE!r} scope")
    return Caller(found.workspace)


CallerDep = Annotated[Caller, Depends(credentials)]

# pydantic's error types -> the document's kind of sentence ("The <field> ...").
_TYPE_SENTENCES = {
    "missing": "The {} field is required.",
    "string_type": "The {} must be a string.",
    "int_type": "The {} must be a string.",
    "bool_type": "The {} field must be true or false.",
    "bool_parsing": "The {} field must be true or false.",
    "list_type": "The {} must be an array.",
    "dict_type": "The {} must be an object.",
    "model_type": "The {} must be an object.",
    "model_attributes_type": "The {} must be an object.",
}
# What pydantic adds to a location inside a union (``str | list[str]``).
_UNION_LABELS = frozenset({"str", "int", "list[str]"})


def _invalid(error: ValidationError) -> ValidationFailed:
    """The first of pydantic's errors as the document's 412 for that field."""
    first = error.errors()[0]
    parts = [str(part) for part in first["loc"]]
    kept = [
        part
        for index, part in enumerate(parts)
        if part not in _UNION_LABELS or (index and parts[index - 1] == "custom_headers")
    ]
    # Bounded: a location can hold keys the client chose, of any length.
    field = ".".join(kept)[:200]
    sentence = _TYPE_SENTENCES.get(first["type"], "The {} is invalid.").format(field)
    return ValidationFailed(sentence, field=field)


def _required(field: str) -> ValidationFailed:
    return ValidationFailed(f"The {field} field is required.", field=field)


def parse_mail(body: bytes, *, max_bytes: int) -> MailRequest:
    try:
        payload = json_object(body, name="request body", field=None, max_bytes=max_bytes)
    except ValidationFailed as error:
        raise ValidationFailed(
            f"The request body was formatted improperly: {error.detail}"
        ) from None
    try:
        return MailRequest.model_validate(payload)
    except ValidationError as error:
        raise _invalid(error) from None


def _attachments(given: MailAttachments | None) -> list[AttachmentInput]:
    if given is None or not given.data:
        return []
    track = bool(given.options and given.options.track)
    files = []
    for index, item in enumerate(given.data):
        where = f"attachments.data.{index}"
        if item.path:
            raise ValidationFailed(
                f"The {where}.path field is not supported: posthouse never opens a file "
                "path from a request; send the file's content as base64 in data.",
                field=f"{where}.path",
            )
        if not item.data:
            raise _required(f"{where}.data")
        if not item.filename:
            raise _required(f"{where}.filename")
        try:
            data = base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed(
                f"The {where}.data must be a valid base64 string.", field=f"{where}.data"
            ) from None
        content_id = item.content_id or None
        # An inline image is shown in the HTML, not opened: only files are tracked.
        files.append(
            AttachmentInput(
                item.filename, data, content_id=content_id, track=track and content_id is None
            )
        )
    return files


def _addresses(contacts: list[Contact] | None) -> list[Address | str]:
    return [Address(contact.email, contact.name) for contact in contacts or []]


def _unique_fields(mail: MailRequest) -> dict[str, Any] | None:
    """unique_fields, in personalisation_fields or beside it, as values by address."""
    body = mail.body
    if body is None:
        return None
    inside = body.personalisation_fields.unique_fields if body.personalisation_fields else None
    if body.unique_fields is None and inside is None:
        return None
    found: dict[str, Any] = {}
    for entry in [*(body.unique_fields or []), *(inside or [])]:
        for address, values in entry.items():
            found[address] = {**found.get(address, {}), **values}
    return found


def send_request(mail: MailRequest) -> SendRequest:
    body, headers, options = mail.body, mail.headers, mail.options
    sender = headers.from_ if headers else None
    reply_to = headers.reply_to if headers else None
    track_links = options.track_links if options else None
    group_name = options.group_name if options else None
    template_id = options.template_id if options else None
    personalisation = body.personalisation_fields if body else None
    custom = headers.custom_headers if headers and headers.custom_headers else {}
    return SendRequest(
        sender=Address(sender.email, sender.name) if sender and sender.email else None,
        to=_addresses(headers.to if headers else None),
        cc=_addresses(headers.cc if headers else None),
        bcc=_addresses(headers.bcc if headers else None),
        reply_to=[Address(reply_to.email, reply_to.name)] if reply_to and reply_to.email else [],
        subject=headers.subject if headers else None,
        html=body.html if body else None,
        text=body.text if body else None,
        # A header given several values is sent once, its values joined with ", ".
        headers={
            name: value if isinstance(value, str) else ", ".join(value)
            for name, value in custom.items()
        },
        attachments=_attachments(mail.attachments),
        tags=[group_name] if group_name else [],
        external_id=headers.message_id if headers else None,
        track_opens=options.track_opens if options else None,
        track_clicks=None if track_links is None else ("both" if track_links else "none"),
        unsubscribe_redirect_url=options.unsubscribe_redirect_url if options else None,
        template=TemplateChoice(template_id) if template_id not in (None, "") else None,
        variables=personalisation.common_fields if personalisation else None,
        recipient_variables=_unique_fields(mail),
        # The document's example sends to a cc it gives no unique fields for.
        blank_missing_variables=True,
    )


def _transactions(accepted: Accepted) -> str:
    return orjson.dumps(
        {"transactions": [{"id": str(delivery.id)} for delivery in accepted.deliveries]}
    ).decode()


@router.post(
    "/mail",
    response_model=MailAccepted,
    responses=ERRORS,
    summary="Send a transactional email",
    openapi_extra={
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 256},
                "description": "Optional: a retry with the same key gets the same answer",
            }
        ],
        "requestBody": documented.json_request_body(MailRequest),
    },
)
async def send_mail(request: Request, session: SessionDep, caller: CallerDep) -> Response:
    """Send to every recipient (to, cc and bcc): one transaction id per recipient.
    HTTP Basic: the workspace's name and a key with the send scope."""
    mail = parse_mail(await request.body(), max_bytes=request.app.state.settings.max_request_bytes)
    send = send_request(mail)
    if send.sender is None and send.template is not None:
        # The document needs no From with a template: the workspace's one sender, if any.
        only = await accounts_service.only_sender_address(session, workspace_id=caller.workspace.id)
        send.sender = only

    async def action(options: SubmitOptions) -> tuple[Accepted, str]:
        options.limits = LIMITS
        try:
            accepted = await sending_service.submit(
                session, caller=caller, request=send, options=options
            )
        except SenderNotFound:
            from_email = send.sender.email if isinstance(send.sender, Address) else send.sender
            raise UnknownSendingDomain(str(from_email).rsplit("@", 1)[-1].lower()) from None
        return accepted, _transactions(accepted)

    key = request.headers.get("idempotency-key")
    answer = await accept_path.accept(
        session,
        request.app.state.accept,
        caller=caller,
        api=API,
        action=action,
        key=None
        if key is None
        else IdempotencyKey(
            key,
            accept_path.request_fingerprint(
                request.method, request.url.path, request.url.query, mail.model_dump()
            ),
        ),
        status=200,
    )
    return answer_response(answer)
