"""Issue 15: the OpenAPI document states the limits the API enforces."""

import httpx


async def test_the_send_operation_documents_its_limits(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/emails"]["post"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    payload = form["payload"]["properties"]

    assert parameters["Idempotency-Key"]["pattern"] == "^[!-~]{1,256}$"
    assert parameters["X-Api-Access-Token"]["pattern"].startswith("^pha_")
    assert form["attachments"]["maxItems"] == 5
    assert form["payload"]["additionalProperties"] is False
    assert (payload["to"]["minItems"], payload["to"]["maxItems"]) == (1, 1000)
    assert [payload[f]["maxItems"] for f in ("cc", "bcc", "replyTo")] == [50, 50, 50]
    assert payload["subject"]["maxLength"] == 998
    assert payload["headers"]["maxProperties"] == 50


async def test_the_admin_operations_document_their_limits(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    listing = document["paths"]["/api/v1/suppressions"]["get"]["parameters"]
    limit = next(p["schema"] for p in listing if p["name"] == "limit")

    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    assert (
        document["components"]["schemas"]["DomainCreate"]["properties"]["name"]["maxLength"] == 253
    )
