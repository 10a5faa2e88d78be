"""Reading ``multipart/form-data`` sends: a JSON ``payload`` part (or plain form fields)
plus file parts.

python-multipart's streaming parser, driven directly: Starlette's form layer on top of it
(a spooled temporary file and an upload object per part) cost about 5% of the api's
instructions per accepted send, for parts that end up in memory anyway. The body is
parsed as it arrives, so the request size limit (api.limits) still applies while it
streams.
"""

import codecs
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from posthouse.errors import AttachmentRejected, ValidationFailed

if TYPE_CHECKING:  # a TypedDict python-multipart declares for type checkers only
    from python_multipart.multipart import MultipartCallbacks
from posthouse.sending.schemas import AttachmentInput

# An HTML and a text body of up to 5 MB each, plus addresses and headers.
MAX_PAYLOAD_BYTES = 12 * 1024 * 1024
MAX_PARTS = 50
# JSON values (list and object members) a payload may hold: a send with every list full
# has about 1,200, and per-recipient template variables (recipientVariables) for 1,000
# recipients up to about 90 each. Counted before parsing, so 12 MB of "{}," (4 million
# objects, 250 MB once parsed) is refused without being built.
MAX_PAYLOAD_VALUES = 100_000
# Nesting a JSON body may have when its door asks for a bound: a send needs about 5
# levels, template values a few more. Deeper values cannot be stored or hashed (orjson
# writes at most 255 levels) and only ever come from a probe.
MAX_JSON_DEPTH = 64


@dataclass
class MultipartSend:
    payload: dict[str, Any]
    attachments: list[AttachmentInput]
    # Text parts other than the payload, by name (seed 004 sends plain form fields).
    fields: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    def data(self) -> bytes:
        return b"".join(self.chunks)


class _Reader:
    """Collects the parts python-multipart's callbacks describe."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self.complete = False  # the closing boundary was seen
        self._field = b""
        self._value = b""

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_end": self._end,
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
        }

    def _end(self) -> None:
        self.complete = True

    def _part_begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise ValidationFailed(f"malformed multipart body: more than {MAX_PARTS} parts")
        self.parts.append(_Part())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # Files are bounded by the request size; only the JSON part has its own limit,
        # checked once the parts are known.
        self.parts[-1].chunks.append(data[start:end])

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").lower()
        self.parts[-1].headers[name] = self._value.decode("latin-1")
        self._field, self._value = b"", b""


async def read_multipart_send(
    request: Request, *, max_files: int, file_field: str = "attachments", json_payload: bool = True
) -> MultipartSend:
    """The parts of a send. With ``json_payload`` exactly one ``payload`` part must hold a
    JSON object; without, the text parts are returned as ``fields``."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        wanted = " with a JSON 'payload' part" if json_payload else ""
        raise ValidationFailed(f"Content-Type must be multipart/form-data{wanted}", field="payload")
    boundary = options.get(b"boundary")
    if not boundary:
        raise ValidationFailed("malformed multipart body: missing boundary")
    reader = _Reader()
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        # The base class: a boundary over 256 characters raises FormParserError itself.
        raise ValidationFailed(f"malformed multipart body: {str(error)[:200]}") from None
    if not reader.complete:
        # A cut-off upload would otherwise send its first half as the attachment.
        raise ValidationFailed("malformed multipart body: it ends before its closing boundary")
    payloads: list[_Part] = []
    attachments: list[AttachmentInput] = []
    fields: dict[str, list[str]] = {}
    for part in reader.parts:
        _, disposition = parse_options_header(part.headers.get("content-disposition", ""))
        if b"name" not in disposition:
            raise ValidationFailed(
                'malformed multipart body: a part without a Content-Disposition "name"'
            )
        name = disposition[b"name"].decode("utf-8", "replace")
        if name == "payload" and json_payload:
            payloads.append(part)
        elif name in (file_field, f"{file_field}[]"):
            if b"filename" not in disposition:
                raise ValidationFailed(f"'{file_field}' parts must be files", field=file_field)
            if len(attachments) == max_files:
                raise AttachmentRejected(f"at most {max_files} attachments per email")
            attachments.append(
                AttachmentInput(
                    filename=disposition[b"filename"].decode("utf-8", "replace"),
                    data=part.data(),
                    content_type=part.headers.get("content-type"),
                )
            )
        elif not json_payload:
            try:
                fields.setdefault(name, []).append(part.data().decode("utf-8"))
            except UnicodeDecodeError:
                raise ValidationFailed(f"{name} is not valid UTF-8", field=name) from None
    if not json_payload:
        return MultipartSend(payload={}, attachments=attachments, fields=fields)
    if len(payloads) != 1:
        raise ValidationFailed("exactly one 'payload' part is required", field="payload")
    payload = json_object(payloads[0].data(), field="payload")
    return MultipartSend(payload=payload, attachments=attachments)


def json_object(
    text: bytes,
    *,
    field: str | None,
    name: str | None = None,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_depth: int | None = None,
) -> dict[str, Any]:
    """A JSON object as a door received it (a multipart part, a whole body): within the
    bounds above (bytes, values before it is parsed, orjson's nesting depth, or
    ``max_depth`` when given), strict JSON, an object; else ValidationFailed naming
    ``field`` (None: the request as a whole). ``name`` is what the messages call it
    (default: the field). Files inside a JSON body as base64 make it larger, hence
    ``max_bytes``."""
    name = name or field or "request body"
    if len(text) > max_bytes:
        raise ValidationFailed(f"{name} exceeds {max_bytes // (1024 * 1024)} MB", field=field)
    if _json_values(text) > MAX_PAYLOAD_VALUES:
        raise ValidationFailed(
            f"{name} holds more than {MAX_PAYLOAD_VALUES} JSON values", field=field
        )
    try:
        # orjson: a third of json's cost for a payload carrying 5 KB of HTML. It also
        # refuses what json lets through and the message cannot carry (lone surrogates).
        payload = orjson.loads(text.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError:
        raise ValidationFailed(f"{name} is not valid JSON", field=field) from None
    if not isinstance(payload, dict):
        raise ValidationFailed(f"{name} must be a JSON object", field=field)
    if max_depth is not None and _deeper_than(payload, max_depth):
        raise ValidationFailed(f"{name} nests deeper than {max_depth} levels", field=field)
    return payload


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` deep (iterative: the
    value may be up to 1,024 deep)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def _json_values(text: bytes) -> int:
    """About the number of values in a JSON text, counted in C without parsing it: values
    side by side need a comma between them (and nesting without commas stops at orjson's
    depth limit of 1,024), so its commas bound them. When a long body makes those many,
    the strings plus the commas outside them."""
    commas = text.count(b",")
    if commas <= MAX_PAYLOAD_VALUES:
        return commas
    # Without its escaped backslashes and quotes, every quote left opens or closes a string.
    bare = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = bare.count(b'"') // 2
    if strings > MAX_PAYLOAD_VALUES:
        return strings
    return strings + sum(part.count(b",") for part in bare.split(b'"')[::2])
