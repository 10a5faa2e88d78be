"""Every content rule of a send, in one place, for every front door."""

import hashlib
import mimetypes
import re
import unicodedata
from dataclasses import dataclass

from posthouse.addresses import (
    MAX_DISPLAY_NAME,
    Address,
    has_bidi_controls,
    has_control_characters,
    parse_address,
    shown,
)
from posthouse.domains.service import normalize_domain
from posthouse.errors import (
    AttachmentRejected,
    AttachmentTooLarge,
    AttachmentTypeForbidden,
    RequestTooLarge,
    ValidationFailed,
)
from posthouse.sending.schemas import (
    AddressInput,
    AttachmentInput,
    SendRequest,
    ValidAttachment,
    ValidSend,
)


@dataclass(frozen=True)
class SendLimits:
    max_to: int = 1000
    max_cc: int = 50
    max_bcc: int = 50
    max_reply_to: int = 50
    max_subject: int = 998
    max_body_bytes: int = 5 * 1024 * 1024
    max_headers: int = 50
    max_attachments: int = 5
    max_attachment_bytes: int = 5 * 1024 * 1024
    # The assembled message: base64 grows attachments by 4/3, plus bodies and headers.
    max_message_bytes: int = 39 * 1024 * 1024
    # A door whose document allows only some custom headers (seed 002: "X-" names).
    custom_header_prefix: str | None = None


DEFAULT_LIMITS = SendLimits()

_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
# Headers posthouse writes itself; a client sets them through the request's fields.
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "sender",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
        "return-path", "received", "dkim-signature", "in-reply-to", "references",
        # Trace and authentication results are written by the servers a message
        # passes; set by a sender they would vouch for what nobody checked.
        "authentication-results", "delivered-to", "x-original-to",
        # Part headers: at the top of a message they would describe a part that is not there.
        "content-id", "content-location",
    }
)  # fmt: skip
# Whole families: ARC-Seal, ARC-Message-Signature, ...; Resent-From, Resent-Date, ...
RESERVED_HEADER_PREFIXES = ("arc-", "resent-")
# Seed 001 "Attachments type forbidden": programs and scripts mail filters quarantine.
FORBIDDEN_EXTENSIONS = frozenset(
    {
        "ade", "adp", "apk", "app", "bat", "cab", "chm", "cmd", "com", "cpl", "dll", "dmg",
        "exe", "hta", "inf", "ins", "isp", "iso", "jar", "js", "jse", "lib", "lnk", "mde",
        "msc", "msi", "msix", "msp", "mst", "nsh", "pif", "ps1", "psm1", "reg", "scr", "sct",
        "shb", "sys", "vb", "vbe", "vbs", "vxd", "wsc", "wsf", "wsh",
    }
)  # fmt: skip
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def validate_send(request: SendRequest, limits: SendLimits = DEFAULT_LIMITS) -> ValidSend:
    if request.sender is None or request.sender == "":
        raise ValidationFailed("sender is required", field="sender")
    sender = _address(request.sender, field="sender")
    to = _address_list(request.to, field="to", limit=limits.max_to)
    if not to:
        raise ValidationFailed("to must contain at least one valid email", field="to")
    cc = _address_list(request.cc, field="cc", limit=limits.max_cc)
    bcc = _address_list(request.bcc, field="bcc", limit=limits.max_bcc)
    reply_to = _address_list(request.reply_to, field="reply_to", limit=limits.max_reply_to)
    subject = validate_subject(request.subject, limits)
    html = _body(request.html, field="html", limits=limits)
    text = _body(request.text, field="text", limits=limits)
    if not html and not text:
        raise ValidationFailed("html is required", field="html")
    attachments = validate_attachments(request.attachments, limits)
    size = len(html or "") + len(text or "") + sum(len(a.data) * 4 // 3 for a in attachments)
    if size > limits.max_message_bytes:
        raise RequestTooLarge(
            f"the assembled message would exceed {limits.max_message_bytes // 2**20} MB"
        )
    return ValidSend(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        html=html or None,
        text=text or None,
        headers=validate_headers(request.headers, limits),
        attachments=attachments,
        tags=_tags(request.tags),
        external_id=_short_text(request.external_id, field="external_id", limit=200),
        track_opens=_flag(request.track_opens, field="track_opens"),
        track_clicks=click_mode(request.track_clicks),
        unsubscribe=_flag(request.unsubscribe, field="unsubscribe"),
        unsubscribe_redirect_url=_web_url(
            request.unsubscribe_redirect_url, field="unsubscribe_redirect_url"
        ),
        preheader=_short_text(request.preheader, field="preheader", limit=MAX_PREHEADER) or None,
        auto_text=_flag(request.auto_text, field="auto_text") is not False,
        signing_domain=_domain(request.signing_domain, field="signing_domain"),
        return_path_domain=_domain(request.return_path_domain, field="return_path_domain"),
        tracking_domain=_domain(request.tracking_domain, field="tracking_domain"),
        template_version_id=request.template_version_id,
        personalisation=request.personalisation,
    )


CLICK_MODES = ("none", "html", "text", "both")
_WEB_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


def _flag(value: object, *, field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValidationFailed(f"{field} must be true or false", field=field)
    return value


def click_mode(value: object) -> str | None:
    """A click tracking mode (any case), or None; anything else is refused."""
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in CLICK_MODES:
        raise ValidationFailed(
            "track_clicks must be one of " + ", ".join(CLICK_MODES), field="track_clicks"
        )
    return value.lower()


def _web_url(value: object, *, field: str) -> str | None:
    """An absolute http(s) URL a browser may be sent to: no spaces or control characters."""
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or len(value) > 2000
        or has_control_characters(value)
        or not _WEB_URL.match(value)
    ):
        raise ValidationFailed(f"{field} must be an absolute http or https URL", field=field)
    return value


def _domain(value: object, *, field: str) -> str | None:
    """A host name in its stored form (lower case, IDNA); whether it is one of the
    workspace's domains is checked with the database (domains.service.send_domains)."""
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise ValidationFailed("not a string")
        return normalize_domain(value)
    except ValidationFailed:
        raise ValidationFailed(
            f"{field} must be a domain name, not {shown(value)}", field=field
        ) from None


def _address(value: AddressInput, *, field: str) -> Address:
    if isinstance(value, Address):
        if any(c in value.email for c in "<>,; "):
            raise ValidationFailed(f"{field}: ambiguous address {shown(value.email)}", field=field)
        bare = parse_address(value.email, field=field)
        return Address(email=bare.email, name=_name(value.name, field))
    address = parse_address(value, field=field)
    _name(address.name, field)
    return address


def _name(name: str | None, field: str) -> str | None:
    if name is not None and has_control_characters(name):
        raise ValidationFailed(f"{field}: display name contains control characters", field=field)
    if name is not None and has_bidi_controls(name):
        raise ValidationFailed(
            f"{field}: display name contains bidirectional controls (U+202E, ...)", field=field
        )
    if name is not None and len(name) > MAX_DISPLAY_NAME:
        raise ValidationFailed(
            f"{field}: display name is longer than {MAX_DISPLAY_NAME} characters", field=field
        )
    return name or None


def _address_list(values: object, *, field: str, limit: int) -> list[Address]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValidationFailed(f"{field} must be a list of email addresses", field=field)
    if len(values) > limit:
        raise ValidationFailed(f"{field} accepts at most {limit} addresses", field=field)
    return [_address(value, field=field) for value in values]


# Seed 001's previewTitle: "up to 255 characters".
MAX_PREHEADER = 255


def validate_subject(subject: object, limits: SendLimits = DEFAULT_LIMITS) -> str:
    """A subject as given, or as a template rendered it for one recipient."""
    if not isinstance(subject, str) or not subject.strip():
        raise ValidationFailed("subject is required", field="subject")
    if has_control_characters(subject):
        raise ValidationFailed(
            "subject contains control characters (CR, LF, NUL, ...)", field="subject"
        )
    if len(subject) > limits.max_subject:
        raise ValidationFailed(
            f"subject is longer than {limits.max_subject} characters", field="subject"
        )
    return subject


def _body(body: object, *, field: str, limits: SendLimits) -> str | None:
    if body is None:
        return None
    if not isinstance(body, str):
        raise ValidationFailed(f"{field} must be a string", field=field)
    if "\x00" in body:
        raise ValidationFailed(f"{field} contains a NUL character", field=field)
    if len(body.encode("utf-8", "surrogatepass")) > limits.max_body_bytes:
        raise RequestTooLarge(
            f"{field} is larger than {limits.max_body_bytes // 2**20} MB", field=field
        )
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(f"{field} is not valid Unicode", field=field) from None
    return body


def validate_headers(headers: object, limits: SendLimits = DEFAULT_LIMITS) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ValidationFailed("headers must be an object of name: value", field="headers")
    if len(headers) > limits.max_headers:
        raise ValidationFailed(f"at most {limits.max_headers} custom headers", field="headers")
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValidationFailed(f"invalid header name {shown(name)}", field="headers")
        if name.lower() in RESERVED_HEADERS or name.lower().startswith(RESERVED_HEADER_PREFIXES):
            raise ValidationFailed(
                f"header {name} is set by posthouse; use the request's own field", field="headers"
            )
        prefix = limits.custom_header_prefix
        if prefix is not None and not name.lower().startswith(prefix.lower()):
            raise ValidationFailed(f"header {name} must start with {prefix}", field="headers")
        if not isinstance(value, str):
            raise ValidationFailed(f"header {name} must be a string", field="headers")
        if has_control_characters(value):
            raise ValidationFailed(
                f"header {name} contains control characters (CR, LF, NUL, ...)", field="headers"
            )
        if len(value) > 900:
            raise ValidationFailed(f"header {name} is longer than 900 characters", field="headers")
        if any(existing.lower() == name.lower() for existing in result):
            raise ValidationFailed(f"header {name} is given twice", field="headers")
        result[name] = value
    return result


def validate_filename(filename: object) -> str:
    if not isinstance(filename, str) or not filename:
        raise AttachmentRejected("attachment filename must not be empty")
    name = unicodedata.normalize("NFC", filename)
    if len(name) > 255:
        raise AttachmentRejected("attachment filename is longer than 255 characters")
    if has_control_characters(name) or any(c in name for c in '/\\:*?"<>|'):
        raise AttachmentRejected(f"unsafe attachment filename {shown(filename)}")
    if has_bidi_controls(name):
        raise AttachmentRejected(
            f"unsafe attachment filename {shown(filename)}: bidirectional controls"
        )
    if name.strip(" .") == "" or name != name.strip() or name.endswith("."):
        raise AttachmentRejected(f"unsafe attachment filename {shown(filename)}")
    if _WINDOWS_RESERVED.match(name):
        raise AttachmentRejected(f"reserved attachment filename {shown(filename)}")
    return name


def validate_attachments(
    attachments: list[AttachmentInput], limits: SendLimits = DEFAULT_LIMITS
) -> list[ValidAttachment]:
    if len(attachments) > limits.max_attachments:
        raise AttachmentRejected(f"at most {limits.max_attachments} attachments per email")
    seen: set[str] = set()
    result = []
    for attachment in attachments:
        name = validate_filename(attachment.filename)
        if name.casefold() in seen:
            raise AttachmentRejected(f"duplicate attachment filename {name!r}")
        seen.add(name.casefold())
        if not attachment.data:
            raise AttachmentRejected(f"attachment {name!r} is empty")
        if len(attachment.data) > limits.max_attachment_bytes:
            raise AttachmentTooLarge(
                f"attachment {name!r} is larger than {limits.max_attachment_bytes // 2**20} MB"
            )
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if extension in FORBIDDEN_EXTENSIONS or is_executable(attachment.data):
            raise AttachmentTypeForbidden(name)
        result.append(
            ValidAttachment(
                filename=name,
                content_type=_content_type(attachment.content_type, name),
                data=attachment.data,
                content_id=_content_id(attachment.content_id),
                sha256=hashlib.sha256(attachment.data).hexdigest(),
                track=attachment.track,
            )
        )
    return result


_MACHO_MAGIC = frozenset(
    {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}
)


def is_executable(data: bytes) -> bool:
    """A program whatever its name says: a Windows PE (the "MZ" header pointing at a
    "PE" signature), ELF or Mach-O file. A renamed invoice.exe is still refused."""
    if data[:4] == b"\x7fELF" or data[:4] in _MACHO_MAGIC:
        return True
    if data[:2] != b"MZ" or len(data) < 64:
        return False
    offset = int.from_bytes(data[0x3C:0x40], "little")
    return data[offset : offset + 4] == b"PE\x00\x00"


_MIME_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}/[A-Za-z0-9][\w.+-]{0,126}$")


def _content_type(given: str | None, filename: str) -> str:
    base = (given or "").split(";", 1)[0].strip().lower()
    if not (base and base != "application/octet-stream" and _MIME_TYPE.match(base)):
        base = mimetypes.guess_type(filename, strict=False)[0] or ""
    # Only discrete types (RFC 2046): a multipart/* or message/* attachment would have to
    # be a MIME structure itself, and bytes declared as one make a broken message.
    if not base or base.startswith(("multipart/", "message/")):
        return "application/octet-stream"
    return base


def _content_id(content_id: str | None) -> str | None:
    if content_id is None:
        return None
    value = content_id.strip().removeprefix("<").removesuffix(">")
    if not value or has_control_characters(value) or not re.fullmatch(r"[!-~]{1,250}", value):
        raise AttachmentRejected(f"invalid content id {shown(content_id)}")
    if any(c in value for c in "<> "):
        raise AttachmentRejected(f"invalid content id {shown(content_id)}")
    return value


def _tags(tags: object) -> list[str]:
    if not tags:
        return []
    if not isinstance(tags, list) or len(tags) > 20:
        raise ValidationFailed("tags must be a list of at most 20 strings", field="tags")
    return [_short_text(tag, field="tag", limit=100) or "" for tag in tags]


def _short_text(value: object, *, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or has_control_characters(value) or len(value) > limit:
        raise ValidationFailed(f"invalid {field}", field=field)
    return value
