"""Every front door renders every domain error in its own shape, with the right status.

Services raise neutral errors (posthouse.errors); a door owns its wording and its field
names. A new door joins by adding a ``Door`` to DOORS; a new error class must get an
example here, so no door meets an error it was never shown.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import Response

from posthouse import errors
from posthouse.api.dialects.emailmassivo.errors import ApiKeyNotFound
from posthouse.api.dialects.emailmassivo.errors import render_error as emailmassivo_render
from posthouse.api.dialects.envelope.errors import render_error as envelope_render
from posthouse.api.dialects.everlytic.errors import UnknownSendingDomain
from posthouse.api.dialects.everlytic.errors import render_error as everlytic_render
from posthouse.api.dialects.sendclean.errors import render_error as sendclean_render
from posthouse.api.native.errors import SenderNotRegistered
from posthouse.api.native.errors import render_error as native_render
from posthouse.errors import PosthouseError


def _all_error_classes() -> list[type[PosthouseError]]:
    found: list[type[PosthouseError]] = []
    pending: list[type[PosthouseError]] = [PosthouseError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: cls.__name__)


# One example per domain error, with the neutral text and data a service gives it.
EXAMPLES: dict[type[PosthouseError], PosthouseError] = {
    errors.PosthouseError: errors.PosthouseError("something is wrong"),
    errors.ValidationFailed: errors.ValidationFailed(
        "reply_to accepts at most 50 addresses", field="reply_to"
    ),
    errors.Unauthenticated: errors.Unauthenticated("credentials are required"),
    errors.Forbidden: errors.Forbidden("this key lacks the 'admin' scope"),
    errors.NotFound: errors.NotFound("workspace 'acme' not found"),
    errors.SenderNotFound: errors.SenderNotFound(),
    SenderNotRegistered: SenderNotRegistered(),
    ApiKeyNotFound: ApiKeyNotFound(),
    UnknownSendingDomain: UnknownSendingDomain("fakedomain.com"),
    errors.MessageNotFound: errors.MessageNotFound("ema_01JABC"),
    errors.RequestTooLarge: errors.RequestTooLarge("html is larger than 10 MB", field="html"),
    errors.AttachmentTooLarge: errors.AttachmentTooLarge("attachment 'a.pdf' is too large"),
    errors.AttachmentRejected: errors.AttachmentRejected("attachment 'a.pdf' is empty"),
    errors.AttachmentTypeForbidden: errors.AttachmentTypeForbidden("run.exe"),
    errors.QuotaExceeded: errors.QuotaExceeded(),
    errors.WorkspaceSuspended: errors.WorkspaceSuspended("high bounce rate"),
    errors.RecipientsSuppressed: errors.RecipientsSuppressed(
        "all recipients are suppressed: a@example.com", addresses=["a@example.com"]
    ),
    errors.IdempotencyConflict: errors.IdempotencyConflict("key used with another request"),
    errors.IdempotencyInFlight: errors.IdempotencyInFlight("key in flight"),
    errors.DomainNotVerified: errors.DomainNotVerified("domain example.com is not verified"),
    errors.DomainNotFound: errors.DomainNotFound("domain example.com not found"),
    errors.TrackingNotFound: errors.TrackingNotFound("no such link"),
    errors.DomainExists: errors.DomainExists("domain example.com already exists"),
    errors.RateLimited: errors.RateLimited("too many requests", retry_after=3),
    errors.TemplateNotFound: errors.TemplateNotFound("template tpl_01JABC not found"),
    errors.TemplateInvalid: errors.TemplateInvalid(
        "html: line 3: unexpected '}'", part="html", line=3, error="unexpected '}'"
    ),
    errors.TemplateRenderFailed: errors.TemplateRenderFailed(
        "html: the template took over 1000000 steps", part="html"
    ),
    errors.MissingVariables: errors.MissingVariables(
        "missing template variables: city, name", names=["city", "name"]
    ),
    errors.ServiceUnavailable: errors.ServiceUnavailable(retry_after=5),
    errors.UseCaseNotFound: errors.UseCaseNotFound("use case not found"),
    errors.UseCaseExists: errors.UseCaseExists("use case 'receipts' exists already"),
    errors.EmailNotFound: errors.EmailNotFound("email not found"),
    errors.ContinuationTokenInvalid: errors.ContinuationTokenInvalid(
        "continuation_token belongs to another query"
    ),
    errors.RouteNotFound: errors.RouteNotFound("Not Found"),
    errors.MethodNotAllowed: errors.MethodNotAllowed("Method Not Allowed", allow="POST"),
    errors.RequestTimeout: errors.RequestTimeout("the request body did not arrive in time"),
}


@dataclass(frozen=True)
class Door:
    """How one front door renders errors, and what its document says it must show."""

    render: Callable[[PosthouseError], Response]
    status: Callable[[PosthouseError], int]
    check_body: Callable[[PosthouseError, dict[str, Any]], None]
    # The door's own words for some errors (its document's), by class.
    wording: dict[type[PosthouseError], str]


def _native_body(error: PosthouseError, body: dict[str, Any]) -> None:
    extra = {"suppressed"} if isinstance(error, errors.RecipientsSuppressed) else set()
    assert set(body) == {"status", "message"} | extra
    assert body["status"] == error.status_code
    assert isinstance(body["message"], str)
    assert body["message"]


NATIVE = Door(
    render=native_render,
    status=lambda error: error.status_code,
    check_body=_native_body,
    wording={
        errors.SenderNotFound: "Sender email is not found in platform!",
        SenderNotRegistered: "Sender email not registered",
        errors.MessageNotFound: "No API e-mail found for referenceId ema_01JABC",
        errors.QuotaExceeded: "Monthly e-mail quota exceeded",
        errors.WorkspaceSuspended: "API access suspended \u2013 high bounce rate",
        errors.AttachmentTypeForbidden: "Attachments type forbidden: 'run.exe'",
        errors.ValidationFailed: "replyTo accepts at most 50 addresses",
        errors.RequestTooLarge: "body is larger than 10 MB",
        errors.MissingVariables: "missing template variables: city, name",
        errors.ServiceUnavailable: "The service is temporarily unavailable; try again shortly",
    },
)


def _envelope_status(error: PosthouseError) -> int:
    """Seed 004's codes (docs/compatibility.md): 422 for what the client sent wrong."""
    table: list[tuple[type[PosthouseError], int]] = [
        (errors.ValidationFailed, 422),
        (errors.AttachmentRejected, 422),
        (errors.RecipientsSuppressed, 422),
        (errors.WorkspaceSuspended, 422),
        (errors.QuotaExceeded, 429),
        (errors.RateLimited, 429),
    ]
    for cls, status in table:
        if isinstance(error, cls):
            return status
    return error.status_code


def _envelope_body(error: PosthouseError, body: dict[str, Any]) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["message"]
    if isinstance(error, errors.NotFound):
        # Not yours and does not exist look the same.
        assert body["error"] == {"code": "not_found", "message": "not found"}


ENVELOPE = Door(
    render=envelope_render,
    status=_envelope_status,
    check_body=_envelope_body,
    wording={errors.RequestTooLarge: "body_html is larger than 10 MB"},
)


def _emailmassivo_status(error: PosthouseError) -> int:
    """Seed 001's table: 400 for attachments and templates, 402 quota, 403 an inactive
    key (or workspace), 404 a sending domain it cannot use."""
    table: list[tuple[type[PosthouseError], int]] = [
        (errors.AttachmentRejected, 400),
        (errors.AttachmentTooLarge, 400),
        (errors.TemplateInvalid, 400),
        (errors.QuotaExceeded, 402),
        (errors.WorkspaceSuspended, 403),
        (errors.DomainNotVerified, 404),
    ]
    for cls, status in table:
        if isinstance(error, cls):
            return status
    return error.status_code


def _emailmassivo_body(error: PosthouseError, body: dict[str, Any]) -> None:
    assert list(body) == ["message", "error", "statusCode"]
    assert body["statusCode"] == _emailmassivo_status(error)
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["message"], str)
    assert body["message"]


EMAILMASSIVO = Door(
    render=emailmassivo_render,
    status=_emailmassivo_status,
    check_body=_emailmassivo_body,
    wording={
        errors.Unauthenticated: "Invalid API key",
        ApiKeyNotFound: "ExternalMailApiKey not found",
        errors.Forbidden: "API key is not active",
        errors.WorkspaceSuspended: "API key is not active",
        errors.QuotaExceeded: "Not enough resources on the user balance",
        errors.SenderNotFound: "User Domain not found",
        errors.DomainNotVerified: "User Domain not found",
        errors.TemplateNotFound: "TemplateMailUser not found by id",
        errors.MessageNotFound: "MailUuid not found",
        errors.RecipientsSuppressed: "Email receiver unavailable",
        errors.AttachmentTypeForbidden: "Attachments type forbidden",
        errors.AttachmentTooLarge: "Attachments size more than allowed",
        errors.AttachmentRejected: "Attachments parse failed",
        errors.TemplateInvalid: "HTML template is not valid",
        errors.TemplateRenderFailed: "HTML template is not valid",
        errors.RequestTooLarge: "mail.html is larger than 10 MB",
        errors.ServiceUnavailable: "Email processing service is temporarily unavailable",
    },
)


def _sendclean_body(error: PosthouseError, body: dict[str, Any]) -> None:
    """Seed 003: one body, its three names; a credential problem is "Token MissMatch"."""
    assert set(body) == {"status", "code", "name", "message"}
    assert (body["status"], body["code"]) == ("error", -1)
    assert body["name"] in ("ValidationError", "GeneralError", "AuthenticationError")
    assert body["message"]
    client_mistake = errors.ValidationFailed | errors.AttachmentRejected | errors.RequestTooLarge
    if isinstance(error, client_mistake | errors.NotFound | errors.MethodNotAllowed):
        assert body["name"] == "ValidationError"
    if isinstance(error, errors.Unauthenticated):
        assert body == {
            "status": "error",
            "code": -1,
            "name": "AuthenticationError",
            "message": "Token MissMatch",
        }
    if isinstance(error, errors.QuotaExceeded | errors.RateLimited | errors.ServiceUnavailable):
        assert body["name"] == "GeneralError"


SENDCLEAN = Door(
    render=sendclean_render,
    status=lambda error: error.status_code,
    check_body=_sendclean_body,
    wording={
        errors.Unauthenticated: "Token MissMatch",
        errors.ValidationFailed: "message.headers.Reply-To accepts at most 50 addresses",
        errors.RequestTooLarge: "message.html is larger than 10 MB",
        errors.SenderNotFound: "message.from_email is not a sender of this account",
    },
)


def _everlytic_status(error: PosthouseError) -> int:
    """Seed 002's codes (docs/compatibility.md): its 400, 401 and 412 where they fit."""
    table: list[tuple[type[PosthouseError], int]] = [
        (errors.Unauthenticated, 401),
        (errors.Forbidden, 401),
        (errors.SenderNotFound, 400),
        (errors.TemplateNotFound, 412),
        (errors.TemplateInvalid, 412),
        (errors.TemplateRenderFailed, 412),
        (errors.NotFound, 404),
        (errors.AttachmentTooLarge, 413),
        (errors.AttachmentRejected, 400),
        (errors.RecipientsSuppressed, 400),
        (errors.QuotaExceeded, 400),
        (errors.WorkspaceSuspended, 400),
        (errors.DomainNotVerified, 400),
        (errors.IdempotencyInFlight, 409),
    ]
    for cls, status in table:
        if isinstance(error, cls):
            return status
    if isinstance(error, errors.ValidationFailed):
        return 400 if error.field is None else 412
    return error.status_code


def _everlytic_body(error: PosthouseError, body: dict[str, Any]) -> None:
    assert list(body) == ["code", "message", "error"]
    assert body["code"] == _everlytic_status(error)
    [detail] = body["error"]["errors"]
    assert list(detail) == ["domain", "reason", "message", "locationType", "location"]
    assert detail["message"] == body["message"]
    assert detail["reason"] in {
        "invalid", "invalidParameter", "UnverifiedDomain", "required", "Attachment",
        "Duplicate", "CustomHeaders", "NoQuota", "Suppressed", "RequestLimit", "ForbiddenAccess",
    }  # fmt: skip
    if body["code"] == 412:
        [(field, [sentence])] = body["message"]["errors"].items()
        assert field
        assert sentence.startswith("The ")
    else:
        assert isinstance(body["message"], str)
        assert body["message"]
    if isinstance(error, errors.NotFound) and not isinstance(
        error, errors.SenderNotFound | errors.TemplateNotFound
    ):
        assert body["message"] == "Not Found"


EVERLYTIC = Door(
    render=everlytic_render,
    status=_everlytic_status,
    check_body=_everlytic_body,
    wording={
        errors.Unauthenticated: "Login Required",
        UnknownSendingDomain: "Send Failed - Unable to send: Unverified Domain - fakedomain.com",
        errors.ValidationFailed: "The headers.reply_to.email is invalid",
        errors.TemplateNotFound: "The selected options.template_id is invalid.",
        errors.RateLimited: "Request Limit Exceeded",
    },
)

DOORS = [
    pytest.param(NATIVE, id="native"),
    pytest.param(ENVELOPE, id="seed004"),
    pytest.param(EMAILMASSIVO, id="seed001"),
    pytest.param(SENDCLEAN, id="seed003"),
    pytest.param(EVERLYTIC, id="seed002"),
]


def test_every_domain_error_has_an_example() -> None:
    assert set(_all_error_classes()) == set(EXAMPLES)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("error_class", _all_error_classes(), ids=lambda cls: cls.__name__)
def test_the_door_renders_the_error_in_its_shape(
    door: Door, error_class: type[PosthouseError]
) -> None:
    error = EXAMPLES[error_class]
    response = door.render(error)

    assert response.status_code == door.status(error)
    body = json.loads(bytes(response.body))
    door.check_body(error, body)
    if error_class in door.wording:
        assert door.wording[error_class] in json.dumps(body, ensure_ascii=False)
    if isinstance(
        error, errors.RateLimited | errors.IdempotencyInFlight | errors.ServiceUnavailable
    ):
        assert response.headers["Retry-After"] == str(error.retry_after)
