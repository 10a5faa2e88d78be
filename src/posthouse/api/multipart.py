"""Reading ``multipart/form-data`` sends: a JSON ``payload`` part (or plain form fields)
plus file parts.

python-multipart's streaming parser, driven directly: Starlette's form layer on top of it
(a spooled temporary file and an upload object per part) cost about 5% of the api's
instructions per accepted send, for parts that end up in memory anyway. The body is
parsed as it arrives, so the request size limit (api.limits) still applies while it
streams.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from posthouse.api.json_body import MAX_JSON_VALUES, load_json_object
from posthouse.errors import AttachmentRejected, ValidationFailed

if TYPE_CHECKING:  # a TypedDict python-multipart declares for type checkers only
    from python_multipart.multipart import MultipartCallbacks
from posthouse.sending.schemas import AttachmentInput

# An HTML and a text body of up to 5 MB each, plus addresses and headers.
MAX_PAYLOAD_BYTES = 12 * 1024 * 1024
MAX_PARTS = 50
MAX_PAYLOAD_VALUES = MAX_JSON_VALUES


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
    text = payloads[0].data()
    if len(text) > MAX_PAYLOAD_BYTES:
        raise ValidationFailed(
            f"payload exceeds {MAX_PAYLOAD_BYTES // (1024 * 1024)} MB", field="payload"
        )
    payload = load_json_object(text, field="payload")
    return MultipartSend(payload=payload, attachments=attachments)
