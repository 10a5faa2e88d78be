"""Rate limiting for the HTTP front doors: which buckets a request spends from, and the
RateLimit-* headers on every response of a limited route."""

from collections.abc import Awaitable, Callable
from ipaddress import ip_address

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posthouse.config import Settings
from posthouse.errors import RateLimited
from posthouse.protections import rate_limit
from posthouse.protections.rate_limit import Limit

_STATE_KEY = "rate_limit"


def client_ip(request: Request, settings: Settings) -> str:
    """The peer address, or the client a trusted proxy forwarded for (the right-most
    X-Forwarded-For entry that is not itself a trusted proxy)."""
    peer = request.client.host if request.client else "unknown"
    if peer not in settings.trusted_proxies:
        return peer
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",")]
    for candidate in reversed(forwarded):
        if candidate and candidate not in settings.trusted_proxies:
            try:
                return str(ip_address(candidate))
            except ValueError:
                return peer
    return peer


def rate_limited(
    credential_of: Callable[[Request], str | None],
    *,
    door_ip_rate: Callable[[Settings], float | None] | None = None,
    door: str = "",
) -> Callable[[Request], Awaitable[None]]:
    """A dependency spending one request from the client IP's bucket and the presented
    key's bucket (``credential_of`` reads it, unverified: an unknown key only limits
    itself). Over either limit it raises RateLimited, which each front door renders.
    ``door_ip_rate``: a door's own per-IP rate setting; when set, the door's IP buckets
    are its own (named after ``door``), else it shares ``rate_limit_per_ip``'s."""

    async def dependency(request: Request) -> None:
        settings: Settings = request.app.state.settings
        limits = []
        own_rate = door_ip_rate(settings) if door_ip_rate is not None else None
        per_ip = settings.rate_limit_per_ip if own_rate is None else own_rate
        if per_ip > 0:
            address = client_ip(request, settings)
            limits.append(
                Limit(
                    rate_limit.ip_bucket(address if own_rate is None else f"{door}:{address}"),
                    per_ip,
                    settings.rate_limit_burst,
                )
            )
        credential = credential_of(request)
        if credential and settings.rate_limit_per_key > 0:
            limits.append(
                Limit(
                    rate_limit.key_bucket(credential),
                    settings.rate_limit_per_key,
                    settings.rate_limit_burst,
                )
            )
        engine = request.app.state.side_engine or request.app.state.engine
        limiter = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            limiter = request.app.state.rate_limiter = rate_limit.RateLimiter()
        state = await limiter.take(engine, limits=limits)
        if state is None:
            return
        request.state.rate_limit = state
        if not state.allowed:
            raise RateLimited("Too many requests", retry_after=state.retry_after)

    return dependency


class RateLimitHeaders:
    """Adds the RateLimit-* headers (and Retry-After on 429) to every response of a
    request that was rate limited, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {}).get(_STATE_KEY)
                if state is not None:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    extra = [
                        (name.lower().encode(), value.encode())
                        for name, value in state.headers().items()
                        if name.lower().encode() not in present
                    ]
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
