"""Request body size, enforced while the body streams in."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posthouse.errors import RequestTooLarge


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` without buffering them: a declared Content-Length
    over the limit fails on the first read, an undeclared (chunked) one as soon as the
    running count passes it. The error is raised inside the route that reads the body, so
    each front door renders it in its own shape."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        received = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal received
            if too_large:
                raise RequestTooLarge(f"Request body larger than {limit} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(f"Request body larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
