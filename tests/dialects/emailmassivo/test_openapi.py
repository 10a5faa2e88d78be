"""Seed 001's operations in the app's OpenAPI document, with their request and response
schemas (schemathesis generates its requests from them)."""

import httpx
import pytest


@pytest.mark.parametrize(
    ("path", "field"), [("send", "html"), ("send-by-template", "idTemplateMailUser")]
)
async def test_each_operation_documents_its_body_key_and_answers(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"][f"/api/v1/external-mails/{path}"]["post"]

    assert [p["name"] for p in operation["parameters"]] == ["X-Api-Key"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["mail"]
    mail = body["properties"]["mail"]
    assert {"to", "from", "subject", "previewTitle", "headers", "cc", "bcc", "attachments"} <= set(
        mail["properties"]
    )
    assert field in mail["properties"]
    assert "$ref" not in str(body)  # written in place: openapi_extra registers no $defs
    answers = operation["responses"]
    accepted = answers["200"]["content"]["application/json"]["schema"]["$ref"]
    assert accepted == "#/components/schemas/ExternalMailAccepted"
    for status in ("400", "401", "402", "403", "404", "413", "422", "429", "503"):
        error = answers[status]["content"]["application/json"]["schema"]["$ref"]
        assert error == "#/components/schemas/ExternalMailError"
    schemas = document["components"]["schemas"]
    assert set(schemas["ExternalMailAccepted"]["properties"]) == {
        "uuid",
        "additionalRecipients",
        "warning",
    }
