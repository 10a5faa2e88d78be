"""Seed 003's door as a whole: its shape for unknown paths and methods under its
prefixes, rate limits with RateLimit-* headers, and its operations in
the OpenAPI document."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from posthouse.app import create_app
from posthouse.config import Settings
from tests.dialects.sendclean.conftest import Account


@pytest.mark.parametrize("path", ["/messages/nope", "/v1.0/messages/nope", "/v1.0/nope"])
async def test_an_unknown_path_under_the_door_is_in_its_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, json={})

    assert response.status_code == 404
    assert response.json() == {
        "status": "error",
        "code": -1,
        "name": "ValidationError",
        "message": "Not Found",
    }


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/messages/sendMail", "POST"),
        ("POST", "/v1.0/messages/sendTemplateHTTPGet", "GET"),
        ("HEAD", "/messages/sendTemplateHTTPGet", "GET"),
    ],
)
async def test_an_unknown_method_is_in_its_shape(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """A HEAD (a link checker, a prefetcher) never runs the sending GET."""
    response = await client.request(method, path)

    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    if method != "HEAD":
        assert response.json()["name"] == "ValidationError"


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # Two requests of burst per IP, then one every ten seconds: no refill within a test.
    application: FastAPI = create_app(
        settings.model_copy(update={"rate_limit_per_ip": 0.1, "rate_limit_burst": 20.0})
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_rate_limits_apply_with_their_headers(
    limited: httpx.AsyncClient, account: Account
) -> None:
    body = {
        **account.credentials,
        "message": {
            "subject": "Hi",
            "from_email": "message.from_email@example.com",
            "to": [{"email": "ada@example.com"}],
            "text": "Hi",
        },
    }
    responses = [await limited.post("/messages/sendMail", json=body) for _ in range(2)]
    responses.append(await limited.get("/v1.0/messages/sendTemplateHTTPGet"))

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json() == {
        "status": "error",
        "code": -1,
        "name": "GeneralError",
        "message": "Too many requests",
    }
    assert int(responses[2].headers["Retry-After"]) >= 1
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]


async def test_a_per_key_limit_counts_the_token_in_the_body(
    settings: Settings, account: Account
) -> None:
    application = create_app(
        settings.model_copy(update={"rate_limit_per_key": 0.1, "rate_limit_burst": 10.0})
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = {**account.credentials, "x_unique_id": "x"}
            statuses = [
                (await http.post("/messages/getMessageInfo", json=body)).status_code
                for _ in range(2)
            ]
            other = await http.post("/messages/getMessageInfo", json={**body, "token": "another"})

    assert statuses == [200, 429]
    assert other.status_code == 401  # another key's bucket: it is only refused


async def test_every_operation_is_in_the_openapi_document_with_its_schemas(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    for prefix in ("/messages", "/v1.0/messages"):
        for name, method in (
            ("sendMail", "post"),
            ("sendTemplate", "post"),
            ("getMessageInfo", "post"),
            ("sendTemplateHTTPGet", "get"),
        ):
            operation = document["paths"][f"{prefix}/{name}"][method]
            assert {"200", "400", "401", "429", "503"} <= set(operation["responses"])
            if method == "post":
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert {"owner_id", "token"} <= set(schema["required"])
            else:
                names = {p["name"] for p in operation["parameters"]}
                assert {"owner_id", "token", "smtp_user_name", "dynamic_value"} <= names
    schemas = document["components"]["schemas"]
    assert {"Success", "SendCleanError", "MessageInfoList"} <= set(schemas)
