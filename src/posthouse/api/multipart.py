"""Reading ``multipart/form-data`` sends: a JSON ``payload`` part plus file parts."""

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from posthouse.errors import AttachmentRejected, PosthouseError, ValidationFailed
from posthouse.sending.schemas import AttachmentInput

MAX_PAYLOAD_BYTES = 12 * 1024 * 1024


@dataclass
class MultipartSend:
    payload: dict[str, Any]
    attachments: list[AttachmentInput]


async def read_multipart_send(
    request: Request, *, max_files: int, file_field: str = "attachments"
) -> MultipartSend:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValidationFailed(
            "Content-Type must be multipart/form-data with a JSON 'payload' part", field="payload"
        )
    try:
        # One file more than allowed parses, so validation can say what is wrong.
        form = await request.form(
            max_files=max_files + 1, max_fields=50, max_part_size=MAX_PAYLOAD_BYTES
        )
    except HTTPException as error:
        if isinstance(error.__cause__, PosthouseError):
            raise error.__cause__ from None
        if "files" in str(error.detail).lower():
            raise AttachmentRejected(f"at most {max_files} attachments per email") from None
        raise ValidationFailed(f"malformed multipart body: {error.detail}") from None
    try:
        payloads = form.getlist("payload")
        if len(payloads) != 1:
            raise ValidationFailed("exactly one 'payload' part is required", field="payload")
        raw = payloads[0]
        text = await raw.read() if isinstance(raw, UploadFile) else raw
        try:
            payload = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed("payload is not valid JSON", field="payload") from None
        if not isinstance(payload, dict):
            raise ValidationFailed("payload must be a JSON object", field="payload")
        attachments = []
        for part in [*form.getlist(file_field), *form.getlist(f"{file_field}[]")]:
            if not isinstance(part, UploadFile):
                raise ValidationFailed(f"'{file_field}' parts must be files", field=file_field)
            attachments.append(
                AttachmentInput(
                    filename=part.filename or "",
                    data=await part.read(),
                    content_type=part.content_type,
                )
            )
        return MultipartSend(payload=payload, attachments=attachments)
    finally:
        await form.close()
