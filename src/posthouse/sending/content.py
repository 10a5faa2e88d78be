"""The content step: what runs on a request before it is validated.

Templates render here (a stored template and its data become subject, html and text),
so what they produce is validated like any request. No step is installed today:
``SubmitOptions.content`` is None and submit() uses the request as given.
"""

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.sending.schemas import Caller, SendRequest


class ContentStep(Protocol):
    async def prepare(
        self, session: AsyncSession, *, caller: Caller, request: SendRequest
    ) -> SendRequest:
        """The request to validate: ``request`` itself, or one with its content filled in."""
        ...
