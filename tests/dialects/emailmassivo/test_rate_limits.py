"""Seed 001's "no more than 10 requests per second from one IP": the door's own per-IP
setting (POSTHOUSE_EMAILMASSIVO_RATE_LIMIT_PER_IP; unset, the shared per-IP rate, 10 by
default), 429 in the door's body with Retry-After, RateLimit-* on every response."""

from collections.abc import AsyncIterator

import httpx
import pytest

from posthouse.app import create_app
from posthouse.config import Settings
from tests.conftest import SenderTokens, multipart
from tests.dialects.emailmassivo.conftest import SEND, Account, error_of, mail


def test_the_default_is_the_documents_10_requests_per_second_per_ip() -> None:
    defaults = Settings(_env_file=None)

    assert defaults.emailmassivo_rate_limit_per_ip is None
    assert defaults.rate_limit_per_ip == 10


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # The door's own rate: two requests of burst, then one every ten seconds. The
    # shared per-IP limit stays off, so other doors are not limited.
    app = create_app(
        settings.model_copy(
            update={"emailmassivo_rate_limit_per_ip": 0.1, "rate_limit_burst": 20.0}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_over_the_doors_limit_is_429_in_its_shape_with_ratelimit_headers(
    limited: httpx.AsyncClient, account: Account, sender: SenderTokens
) -> None:
    responses = [
        await limited.post(SEND, headers=account.headers, json=mail(subject=f"n{i}"))
        for i in range(3)
    ]
    native = await limited.post(
        "/api/v1/emails",
        headers=sender.headers,
        **multipart(
            {
                "from": sender.email,
                "to": ["alice@example.com"],
                "subject": "Hi",
                "body": "<p>Hi</p>",
            }
        ),
    )

    assert [r.status_code for r in responses[:2]] == [200, 200]
    assert error_of(responses[2], 429) == "ThrottlerException: Too Many Requests"
    assert int(responses[2].headers["Retry-After"]) >= 1
    assert [r.headers["RateLimit-Limit"] for r in responses] == ["2", "2", "2"]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert native.status_code == 202, native.text  # its own buckets: the native door is free
