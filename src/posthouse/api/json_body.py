"""Reading a JSON object a client sent (a request body, or a multipart payload part),
bounded before it is parsed."""

import codecs
from typing import Any

import orjson

from posthouse.errors import ValidationFailed

# JSON values (list and object members) a payload may hold: a send with every list full
# has about 1,200, and per-recipient template variables (recipientVariables) for 1,000
# recipients up to about 90 each. Counted before parsing, so 12 MB of "{}," (4 million
# objects, 250 MB once parsed) is refused without being built.
MAX_JSON_VALUES = 100_000
# Nesting a JSON body may have when its door asks for a bound: a send needs about 5
# levels, template values a few more. Deeper values cannot be stored or hashed (orjson
# writes at most 255 levels) and only ever come from a probe.
MAX_JSON_DEPTH = 64


def load_json_object(text: bytes, *, field: str, max_depth: int | None = None) -> dict[str, Any]:
    """``text`` as a JSON object; anything else (or nesting deeper than ``max_depth``) is
    ValidationFailed naming ``field``."""
    if json_values(text) > MAX_JSON_VALUES:
        raise ValidationFailed(
            f"{field} holds more than {MAX_JSON_VALUES} JSON values", field=field
        )
    try:
        # orjson: a third of json's cost for a payload carrying 5 KB of HTML. It also
        # refuses what json lets through and the message cannot carry (lone surrogates),
        # and nesting deeper than 1,024.
        payload = orjson.loads(text.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError:
        raise ValidationFailed(f"{field} is not valid JSON", field=field) from None
    if not isinstance(payload, dict):
        raise ValidationFailed(f"{field} must be a JSON object", field=field)
    if max_depth is not None and _deeper_than(payload, max_depth):
        raise ValidationFailed(f"{field} nests deeper than {max_depth} levels", field=field)
    return payload


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` deep (iterative: the
    value may be up to 1,024 deep)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def json_values(text: bytes) -> int:
    """About the number of values in a JSON text, counted in C without parsing it: values
    side by side need a comma between them (and nesting without commas stops at orjson's
    depth limit of 1,024), so its commas bound them. When a long body makes those many,
    the strings plus the commas outside them."""
    commas = text.count(b",")
    if commas <= MAX_JSON_VALUES:
        return commas
    # Without its escaped backslashes and quotes, every quote left opens or closes a string.
    bare = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = bare.count(b'"') // 2
    if strings > MAX_JSON_VALUES:
        return strings
    return strings + sum(part.count(b",") for part in bare.split(b'"')[::2])
