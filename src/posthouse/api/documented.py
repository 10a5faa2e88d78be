"""The limits the OpenAPI document states, taken from where they are enforced.

Only documented here: the rules themselves run once, in sending/validation.py,
sending/addresses.py, api/multipart.py and protections/idempotency.py, so every front
door refuses the same input with its own wording. Pydantic constraints would enforce
them a second time, with other messages.
"""

from typing import Any

from pydantic import BaseModel

from posthouse.addresses import MAX_ENTRY
from posthouse.api.multipart import MAX_PAYLOAD_BYTES, MAX_PAYLOAD_VALUES
from posthouse.sending.validation import DEFAULT_LIMITS

LIMITS = DEFAULT_LIMITS


def addresses(limit: int, *, at_least: int = 0) -> dict[str, Any]:
    """A list of ``addr@domain`` or ``Name <addr@domain>`` entries."""
    schema: dict[str, Any] = {
        "maxItems": limit,
        "items": {"type": "string", "maxLength": MAX_ENTRY},
    }
    if at_least:
        schema["minItems"] = at_least
    return schema


SUBJECT: dict[str, Any] = {"minLength": 1, "maxLength": LIMITS.max_subject}
HEADERS: dict[str, Any] = {
    "maxProperties": LIMITS.max_headers,
    "propertyNames": {"pattern": "^[!-9;-~]{1,76}$"},
    "additionalProperties": {"type": "string", "maxLength": 900},
}
ATTACHMENTS: dict[str, Any] = {
    "type": "array",
    "maxItems": LIMITS.max_attachments,
    "items": {"type": "string", "format": "binary"},
    "description": f"At most {LIMITS.max_attachments} files of at most "
    f"{LIMITS.max_attachment_bytes // 2**20} MB each; programs are refused",
}
PAYLOAD = (
    f"At most {MAX_PAYLOAD_BYTES // 2**20} MB and {MAX_PAYLOAD_VALUES} JSON values; "
    "unknown fields are refused"
)
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": "^[!-~]{1,256}$",
}
ACCESS_TOKEN: dict[str, Any] = {"type": "string", "pattern": "^pha_[A-Za-z0-9_-]+$"}
SECRET_TOKEN: dict[str, Any] = {"type": "string", "pattern": "^phs_[A-Za-z0-9_-]+$"}


def inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its nested models written in place: a request body
    given through ``openapi_extra`` bypasses FastAPI's registration of ``$defs`` in the
    document's components (none of the models recurse)."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """A required JSON request body of ``model``'s shape, for an operation's
    ``openapi_extra`` (doors that read the body themselves)."""
    return {
        "required": True,
        "content": {"application/json": {"schema": inlined_schema(model)}},
    }
