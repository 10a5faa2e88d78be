"""Domain errors shared by every front door. Each door renders them in its own wire shape.

The text of an error is neutral (no provider's wording) and its data are attributes; a
front door owns the words its document uses (``api/native/errors.py`` for seed 000).
``status_code`` is the usual HTTP status; a door that documents another code for the same
rule maps the class, it never re-implements the rule.
"""

from collections.abc import Mapping


class PosthouseError(Exception):
    status_code = 400

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # The canonical name (a SendRequest field) of what was wrong, when one field was.
        # A detail that names the field starts with that name, so a door can put its own.
        self.field = field


class ValidationFailed(PosthouseError):
    """The request is malformed: missing or wrong fields, bad addresses, unsafe headers."""


class Unauthenticated(PosthouseError):
    status_code = 401


class Forbidden(PosthouseError):
    status_code = 403


class NotFound(PosthouseError):
    status_code = 404


class TrackingNotFound(NotFound):
    """A tracking or unsubscribe token that is not genuine, or names nothing: forged,
    tampered and unknown tokens all look alike."""


class SenderNotFound(NotFound):
    """The credentials do not exist, or are not bound to the sender the request names."""

    def __init__(self, detail: str = "sender not found for these credentials") -> None:
        super().__init__(detail)


class MessageNotFound(NotFound):
    """No message with this reference, or not the caller's: the two look the same."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"message {reference} not found")
        self.reference = reference


class RouteNotFound(NotFound):
    """No such path in the API."""


class MethodNotAllowed(PosthouseError):
    status_code = 405

    def __init__(self, detail: str, *, allow: str | None = None) -> None:
        super().__init__(detail)
        self.allow = allow


class RequestTimeout(PosthouseError):
    """The request body did not arrive within the configured time."""

    status_code = 408


class RequestTooLarge(PosthouseError):
    status_code = 413


class AttachmentTooLarge(RequestTooLarge):
    pass


class AttachmentRejected(PosthouseError):
    """Bad filename, empty file, duplicate name: the files cannot be sent as given."""

    status_code = 422


class AttachmentTypeForbidden(AttachmentRejected):
    def __init__(self, filename: str) -> None:
        super().__init__(f"attachment type forbidden: {filename!r}")
        self.filename = filename


class QuotaExceeded(PosthouseError):
    def __init__(self, detail: str = "monthly quota exceeded") -> None:
        super().__init__(detail)


class WorkspaceSuspended(PosthouseError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"workspace suspended: {reason}")
        self.reason = reason


class RecipientsSuppressed(PosthouseError):
    status_code = 422

    def __init__(
        self, detail: str, *, addresses: list[str], reasons: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.addresses = addresses
        # Why each address is suppressed (protections.suppression.SuppressionReason), when
        # the door looked it up: a door that words each reason its own way needs them.
        self.reasons = dict(reasons or {})


class IdempotencyConflict(PosthouseError):
    """The key was used before with a different request."""

    status_code = 409


class IdempotencyInFlight(PosthouseError):
    """A request with the same key is still being processed."""

    status_code = 409
    retry_after = 1


class DomainNotVerified(PosthouseError):
    """The sending domain's DNS records are not (or no longer) verified."""

    status_code = 409


class DomainNotFound(NotFound):
    """Unknown domain, or another workspace's: the two look the same."""


class DomainExists(PosthouseError):
    status_code = 409


class RateLimited(PosthouseError):
    status_code = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TemplateNotFound(NotFound):
    """Unknown template or version, or another workspace's: the two look the same."""


class TemplateInvalid(PosthouseError):
    """A template part does not compile (or uses what the sandbox refuses)."""

    status_code = 422

    def __init__(self, detail: str, *, part: str, line: int | None, error: str) -> None:
        super().__init__(detail)
        self.part = part
        self.line = line
        self.error = error


class TemplateRenderFailed(PosthouseError):
    """Rendering with these values failed: a sandbox refusal, a limit, a type error."""

    def __init__(self, detail: str, *, part: str) -> None:
        super().__init__(detail)
        self.part = part


class MissingVariables(ValidationFailed):
    """The template needs variables the send did not give (``recipient``: for whom)."""

    def __init__(self, detail: str, *, names: list[str], recipient: str | None = None) -> None:
        super().__init__(detail, field="variables")
        self.names = names
        self.recipient = recipient


class ServiceUnavailable(PosthouseError):
    """The database cannot be reached (restarting, failed over, out of connections):
    nothing was stored, and the same request may succeed in a few seconds."""

    status_code = 503

    def __init__(self, detail: str = "database unavailable", *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UseCaseNotFound(NotFound):
    """Unknown use case, or another workspace's: the two look the same."""


class UseCaseExists(PosthouseError):
    status_code = 409


class EmailNotFound(NotFound):
    """A history lookup (an email, its body or attachment) found nothing of the caller's."""


class ContinuationTokenInvalid(ValidationFailed):
    """A paging token that was tampered with, or given with other filters than its own."""
