"""Build the RFC 5322 message for a delivery.

Written directly rather than through email.message: the stdlib generator costs ~4 ms a
message, which alone would cap a core near 250 deliveries/s. Every header value that
reaches this module was checked for CR/LF/NUL by sending.validation; this module only
encodes. The tests re-parse its output under ``email.policy.strict`` and expect no defects.
"""

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from html import escape

from posthouse.mime import encoding
from posthouse.mime.text import html_to_text


@dataclass(frozen=True)
class MimeAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    track: bool = False  # sent as a tracking link instead (tracking.content)


@dataclass(frozen=True)
class MimeContent:
    """Everything a message's bytes depend on; one per message, shared by its deliveries."""

    from_email: str
    from_name: str | None
    to: list[tuple[str | None, str]]
    cc: list[tuple[str | None, str]]
    reply_to: list[tuple[str | None, str]]
    subject: str
    html: str | None
    text: str | None
    message_id: str
    date: datetime
    headers: dict[str, str] = field(default_factory=dict)
    in_reply_to: str | None = None
    references: str | None = None
    attachments: tuple[MimeAttachment, ...] = ()
    # Hidden text at the top of the HTML (seed 001's previewTitle); not in the text part.
    preheader: str | None = None
    # False: an HTML-only message goes as its HTML alone, no text part made from it.
    auto_text: bool = True


_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def with_preheader(html: str, preheader: str) -> str:
    """``html`` with ``preheader`` as the first thing in its body, hidden: inboxes show
    it after the subject, the reader never sees it in the message."""
    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all" aria-hidden="true">'
        f"{escape(preheader, quote=False)}</div>"
    )
    body = _BODY_TAG.search(html)
    at = body.end() if body else 0
    return html[:at] + hidden + html[at:]


@dataclass
class _Part:
    headers: list[str]
    body: bytes = b""
    children: list["_Part"] = field(default_factory=list)
    boundary: str = ""

    def render(self, out: list[bytes]) -> None:
        out.append("\r\n".join(self.headers).encode("ascii"))
        out.append(b"\r\n\r\n")
        if not self.children:
            out.append(self.body)
            return
        delimiter = f"--{self.boundary}".encode("ascii")
        for index, child in enumerate(self.children):
            out.append((b"\r\n" if index else b"") + delimiter + b"\r\n")
            child.render(out)
        out.append(b"\r\n" + delimiter + b"--\r\n")


def _multipart(subtype: str, children: list[_Part]) -> _Part:
    # "=_" never occurs in quoted-printable or base64 output, and 7bit text would have to
    # guess 96 random bits: the boundary cannot collide with a part's content.
    boundary = f"=_ph_{secrets.token_hex(12)}"
    header = encoding.content_header(
        "Content-Type", f"multipart/{subtype}", [f'boundary="{boundary}"']
    )
    return _Part(headers=[header], children=children, boundary=boundary)


def _ascii_share(text: str) -> float:
    sample = text[:4000]
    # Counting the ASCII characters in C: a generator over the characters cost a tenth of
    # the worker's time per delivery.
    return len(sample.encode("ascii", "ignore")) / max(1, len(sample))


def _text_part(subtype: str, text: str) -> _Part:
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    if (
        normal.isascii()
        and "\x00" not in normal
        and max(map(len, normal.split("\n"))) <= encoding.MAX_LINE
    ):
        # As the stdlib's email package does: text that is already 7bit with short lines
        # goes as it is (quoted-printable costs ~80 CPU instructions a byte).
        body, cte = normal.replace("\n", "\r\n").encode("ascii"), "7bit"
    elif _ascii_share(text) < 0.6:
        body, cte = encoding.base64_body(normal.replace("\n", "\r\n").encode()), "base64"
    else:
        body, cte = encoding.quoted_printable(normal), "quoted-printable"
    return _Part(
        headers=[
            f'Content-Type: text/{subtype}; charset="utf-8"',
            f"Content-Transfer-Encoding: {cte}",
        ],
        body=body,
    )


def _file_part(attachment: MimeAttachment, *, inline: bool) -> _Part:
    headers = [
        encoding.content_header(
            "Content-Type", attachment.content_type, encoding.parameter("name", attachment.filename)
        ),
        "Content-Transfer-Encoding: base64",
        encoding.content_header(
            "Content-Disposition",
            "inline" if inline else "attachment",
            encoding.parameter("filename", attachment.filename),
        ),
    ]
    if inline and attachment.content_id:
        headers.append(f"Content-ID: <{attachment.content_id}>")
    return _Part(headers=headers, body=encoding.base64_body(attachment.data))


_DOCUMENT_HEAD = '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'


def html_document(html: str) -> str:
    """A fragment wrapped into a document: clients render a fragment in quirks mode and
    spam filters score the missing structure. A whole document is left as it is."""
    head = html[:2048].lower()
    if "<html" in head:
        return html
    if "<body" in head:
        return f"{_DOCUMENT_HEAD}{html}</html>"
    return f"{_DOCUMENT_HEAD}<body>{html}</body></html>"


def body_text(content: MimeContent) -> str | None:
    """The text part: the one given, else one generated from the HTML unless the message
    asked for none (None: no text part)."""
    if content.text or not content.html:
        return content.text or ""
    return html_to_text(content.html) if content.auto_text else None


def _body(content: MimeContent) -> _Part:
    text = body_text(content)
    if not content.html:
        body = _text_part("plain", text or "")
        files = list(content.attachments)
    else:
        source = html_document(content.html)
        if content.preheader:
            source = with_preheader(source, content.preheader)
        html: _Part = _text_part("html", source)
        inline = [a for a in content.attachments if a.content_id]
        if inline:
            html = _multipart("related", [html, *(_file_part(a, inline=True) for a in inline)])
        body = (
            _multipart("alternative", [_text_part("plain", text), html])
            if text is not None
            else html
        )
        files = [a for a in content.attachments if not a.content_id]
    if files:
        body = _multipart("mixed", [body, *(_file_part(a, inline=False) for a in files)])
    return body


def build_message(content: MimeContent, *, extra_headers: dict[str, str] | None = None) -> bytes:
    """The message's bytes, CRLF line endings, ready for SMTP DATA (before dot-stuffing)."""
    headers = [
        encoding.address_list("From", [(content.from_name, content.from_email)]),
        encoding.address_list("To", content.to),
    ]
    if content.cc:
        headers.append(encoding.address_list("Cc", content.cc))
    if content.reply_to:
        headers.append(encoding.address_list("Reply-To", content.reply_to))
    headers.append(encoding.unstructured("Subject", content.subject))
    headers.append(f"Date: {format_datetime(content.date)}")
    headers.append(f"Message-ID: {content.message_id}")
    if content.in_reply_to:
        headers.append(f"In-Reply-To: {content.in_reply_to}")
    if content.references:
        headers.append(encoding.fold("References", content.references.split()))
    custom = {**content.headers, **(extra_headers or {})}
    headers.extend(encoding.unstructured(name, value) for name, value in custom.items())
    headers.append("MIME-Version: 1.0")
    body = _body(content)
    body.headers = headers + body.headers
    out: list[bytes] = []
    body.render(out)
    return b"".join(out)
