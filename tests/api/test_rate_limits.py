"""Rate limits per client IP and per key: 429 in the native shape with Retry-After, and
RateLimit-* headers on every response, shared by every api process."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.app import create_app
from posthouse.config import Settings
from tests.conftest import SenderTokens, make_sender, multipart

PAYLOAD = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Hi",
    "body": "<p>Hi</p>",
}


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
def ip_limited(settings: Settings) -> Settings:
    # Two requests of burst, then one every ten seconds: no refill within a test.
    return settings.model_copy(update={"rate_limit_per_ip": 0.1, "rate_limit_burst": 20.0})


@pytest.fixture
async def limited(ip_limited: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _client(ip_limited):
        yield http


class TestPerIp:
    async def test_over_the_limit_is_a_429_in_the_native_shape_with_retry_after(
        self, limited: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        responses = [
            await limited.post("/api/v1/emails", headers=sender.headers, **multipart(PAYLOAD))
            for _ in range(3)
        ]

        assert [r.status_code for r in responses] == [202, 202, 429]
        assert responses[2].json() == {"status": 429, "message": "Too many requests"}
        assert int(responses[2].headers["Retry-After"]) >= 1
        assert [r.headers["RateLimit-Limit"] for r in responses] == ["2", "2", "2"]
        assert [r.headers["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
        assert all(int(r.headers["RateLimit-Reset"]) > 0 for r in responses)
        assert "Retry-After" not in responses[0].headers

    async def test_errors_carry_the_headers_and_count_too(self, limited: httpx.AsyncClient) -> None:
        unauthenticated = await limited.post("/api/v1/emails", **multipart(PAYLOAD))
        missing = await limited.get("/api/v1/emails/ema_01JABCDEF1234XYZ")
        over = await limited.get("/api/v1/emails/ema_01JABCDEF1234XYZ")

        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["RateLimit-Remaining"] == "1"
        assert missing.status_code == 401
        assert over.status_code == 429

    async def test_the_limit_is_shared_by_every_api_process(
        self, ip_limited: Settings, sender: SenderTokens
    ) -> None:
        first, second = _client(ip_limited), _client(ip_limited)
        a, b = await anext(first), await anext(second)
        try:
            codes = [
                (
                    await http.post("/api/v1/emails", headers=sender.headers, **multipart(PAYLOAD))
                ).status_code
                for http in (a, b, a, b)
            ]
        finally:
            await first.aclose()
            await second.aclose()

        assert codes == [202, 202, 429, 429]

    async def test_a_trusted_proxy_forwards_the_client_address(
        self, settings: Settings, sender: SenderTokens
    ) -> None:
        behind_proxy = settings.model_copy(
            update={
                "rate_limit_per_ip": 0.1,
                "rate_limit_burst": 10.0,
                "trusted_proxies": ["127.0.0.1"],
            }
        )
        async for http in _client(behind_proxy):
            codes = []
            for client_ip in ("203.0.113.1", "203.0.113.1", "203.0.113.2"):
                response = await http.get(
                    "/api/v1/emails/ema_01JABCDEF1234XYZ",
                    headers={"X-Forwarded-For": f"{client_ip}, 127.0.0.1"},
                )
                codes.append(response.status_code)
            assert codes == [401, 429, 401]


class TestFastLimits:
    async def test_processes_taking_tokens_a_few_at_a_time_stay_within_the_shared_limit(
        self, settings: Settings
    ) -> None:
        # 40/s with 2 s of burst: each process takes two tokens at a time.
        fast = settings.model_copy(update={"rate_limit_per_ip": 40.0, "rate_limit_burst": 2.0})
        first, second = _client(fast), _client(fast)
        a, b = await anext(first), await anext(second)
        try:
            started = time.monotonic()
            codes = [
                (await http.get("/api/v1/emails/ema_01JABCDEF1234XYZ")).status_code
                for http in [a, b] * 75
            ]
            elapsed = time.monotonic() - started
        finally:
            await first.aclose()
            await second.aclose()

        allowed = codes.count(401)
        assert set(codes) <= {401, 429}
        # The burst, what refilled meanwhile, and at most one lease per process on top.
        assert allowed <= 80 + 40 * elapsed + 2 * 2
        assert allowed >= min(150, 80 - 2 * 2)


class TestPerKey:
    async def test_each_key_has_its_own_bucket(
        self,
        settings: Settings,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        other = await make_sender(sessionmaker, "b@yourstore.example")
        key_limited = settings.model_copy(
            update={"rate_limit_per_key": 0.1, "rate_limit_burst": 10.0}
        )
        async for http in _client(key_limited):
            codes = []
            for tokens, sender_email in (
                (sender, sender.email),
                (sender, sender.email),
                (other, other.email),
            ):
                response = await http.post(
                    "/api/v1/emails",
                    headers=tokens.headers,
                    **multipart({**PAYLOAD, "from": sender_email}),
                )
                codes.append(response.status_code)
                assert response.headers["RateLimit-Limit"] == "1"
            assert codes == [202, 429, 202]


class TestOff:
    async def test_no_limit_no_headers(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(PAYLOAD))

        assert response.status_code == 202
        assert "RateLimit-Limit" not in response.headers
