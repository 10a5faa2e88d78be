"""Domain errors shared by every front door. Each dialect maps them to its own wire shape.

``status_code`` is the native API's status; a dialect that documents another code for the
same rule maps the class, it never re-implements the rule.
"""


class PosthouseError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(PosthouseError):
    """The request is malformed: missing or wrong fields, bad addresses, unsafe headers."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class Unauthenticated(PosthouseError):
    status_code = 401


class Forbidden(PosthouseError):
    status_code = 403


class NotFound(PosthouseError):
    status_code = 404


class SenderNotFound(NotFound):
    """The credentials do not exist, or are not bound to the sender the request names."""


class MessageNotFound(NotFound):
    pass


class RequestTooLarge(PosthouseError):
    status_code = 413


class AttachmentTooLarge(RequestTooLarge):
    pass


class AttachmentRejected(PosthouseError):
    """Bad filename, empty file, duplicate name: the files cannot be sent as given."""

    status_code = 422


class AttachmentTypeForbidden(AttachmentRejected):
    pass


class QuotaExceeded(PosthouseError):
    pass


class WorkspaceSuspended(PosthouseError):
    pass


class RecipientsSuppressed(PosthouseError):
    status_code = 422

    def __init__(self, detail: str, *, addresses: list[str]) -> None:
        super().__init__(detail)
        self.addresses = addresses


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
