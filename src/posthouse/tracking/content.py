"""A delivery's own copy of a tracked message: links rewritten to signed click URLs, an
open pixel, tracked attachments as links, and the List-Unsubscribe pair.

``TrackingPlan`` is prepared once per message: it finds the link targets (recorded per
delivery before the copy is sent, see tracking.service.record_links) and cuts the bodies
at them, so each delivery's copy costs a join and a few HMACs, not a parse.

Left alone: ``mailto:``, ``tel:``, anchors and every other non-http(s) target, and links
that already point at posthouse itself (the unsubscribe link, for one).
"""

import html as html_lib
import re
import uuid
from dataclasses import dataclass, replace

from posthouse.mime.builder import MimeAttachment, MimeContent, body_text
from posthouse.tracking.tokens import TokenKind, TokenSigner

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_TEXT_URL = re.compile(r"""https?://[^\s<>"']+""", re.I)
_TRAILING = ".,;:!?)]}"
_BODY_END = re.compile(r"</body\s*>", re.I)

# Each body is stored as its literal pieces with the target positions between them.
_Pieces = tuple[tuple[str, ...], tuple[int, ...]]


@dataclass(frozen=True)
class TrackingOptions:
    opens: bool = False
    html_clicks: bool = False
    text_clicks: bool = False
    unsubscribe: bool = False
    tracked_attachments: frozenset[int] = frozenset()  # positions

    @property
    def any(self) -> bool:
        return (
            self.opens
            or self.html_clicks
            or self.text_clicks
            or self.unsubscribe
            or bool(self.tracked_attachments)
        )


@dataclass(frozen=True)
class DeliveryUrls:
    """Where a delivery's copy points: the public base and the mailto domain."""

    public_url: str
    signer: TokenSigner
    mailto_domain: str | None  # the return-path domain, when the From domain has one

    def url(self, kind: TokenKind, delivery_id: uuid.UUID, position: int = 0) -> str:
        path = {TokenKind.OPEN: "t/o", TokenKind.CLICK: "t/c", TokenKind.ATTACHMENT: "t/a"}.get(
            kind, "u"
        )
        return f"{self.public_url}/{path}/{self.signer.sign(kind, delivery_id, position)}"


def _trackable(url: str, public_url: str) -> bool:
    lowered = url[:8].lower()
    return lowered.startswith(("http://", "https://")) and not url.startswith(public_url + "/")


class _Targets:
    def __init__(self, public_url: str) -> None:
        self.public_url = public_url
        self.urls: list[str] = []
        self._index: dict[str, int] = {}

    def position(self, url: str) -> int | None:
        if not _trackable(url, self.public_url) or any(c in url for c in "\r\n\x00"):
            return None
        if url not in self._index:
            self._index[url] = len(self.urls)
            self.urls.append(url)
        return self._index[url]


def _cut_html(html: str, targets: _Targets) -> _Pieces:
    pieces, positions, start = [], [], 0
    for match in _HREF.finditer(html):
        position = targets.position(html_lib.unescape(match[3]).strip())
        if position is None:
            continue
        pieces.append(html[start : match.start(3)])
        positions.append(position)
        start = match.end(3)
    pieces.append(html[start:])
    return tuple(pieces), tuple(positions)


def _cut_text(text: str, targets: _Targets) -> _Pieces:
    pieces, positions, start = [], [], 0
    for match in _TEXT_URL.finditer(text):
        url = match[0].rstrip(_TRAILING)
        position = targets.position(url)
        if position is None:
            continue
        pieces.append(text[start : match.start()])
        positions.append(position)
        start = match.start() + len(url)
    pieces.append(text[start:])
    return tuple(pieces), tuple(positions)


def _join(pieces: _Pieces, urls: list[str]) -> str:
    literal, positions = pieces
    out = [literal[0]]
    for position, rest in zip(positions, literal[1:], strict=True):
        out.append(urls[position])
        out.append(rest)
    return "".join(out)


def _before_body_end(html: str, addition: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + addition
    at = ends[-1].start()
    return html[:at] + addition + html[at:]


class TrackingPlan:
    """What a message's tracked copies share; ``copy`` makes one delivery's."""

    def __init__(self, content: MimeContent, options: TrackingOptions, public_url: str) -> None:
        self.content = content
        self.options = options
        targets = _Targets(public_url)
        # The text part is generated from the HTML as written, so HTML-only tracking
        # leaves the text part's links alone.
        text = body_text(content)  # None: the message goes without a text part
        self.html = (
            _cut_html(content.html, targets)
            if content.html and options.html_clicks
            else ((content.html or "",), ())
        )
        self.text = (
            None
            if text is None
            else (_cut_text(text, targets) if options.text_clicks else ((text,), ()))
        )
        self.targets: list[str] = targets.urls

    def copy(self, delivery_id: uuid.UUID, urls: DeliveryUrls) -> MimeContent:
        options, content = self.options, self.content
        clicks = [urls.url(TokenKind.CLICK, delivery_id, i) for i in range(len(self.targets))]
        html = _join(self.html, clicks) if content.html else None
        text = _join(self.text, clicks) if self.text is not None else None
        attachments: list[MimeAttachment] = []
        links: list[tuple[str, str]] = []
        for position, attachment in enumerate(content.attachments):
            if position in options.tracked_attachments and not attachment.content_id:
                url = urls.url(TokenKind.ATTACHMENT, delivery_id, position)
                links.append((attachment.filename, url))
            else:
                attachments.append(attachment)
        if links:
            if text is not None:
                text += "\n\nAttachments:\n" + "".join(f"- {n}: {url}\n" for n, url in links)
            if html is not None:
                items = "".join(
                    f'<li><a href="{html_lib.escape(url)}">{html_lib.escape(name)}</a></li>'
                    for name, url in links
                )
                html = _before_body_end(html, f"<p>Attachments:</p><ul>{items}</ul>")
        if html is not None and options.opens:
            pixel = urls.url(TokenKind.OPEN, delivery_id)
            html = _before_body_end(
                html,
                f'<img src="{pixel}" width="1" height="1" alt="" '
                'style="display:block;width:1px;height:1px;border:0">',
            )
        headers = content.headers
        if options.unsubscribe:
            token = urls.signer.sign(TokenKind.UNSUBSCRIBE, delivery_id)
            targets = f"<{urls.public_url}/u/{token}>"
            if urls.mailto_domain:
                targets += f", <mailto:u-{token}@{urls.mailto_domain}>"
            headers = {
                **{k: v for k, v in headers.items() if not k.lower().startswith("list-unsub")},
                "List-Unsubscribe": targets,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return replace(
            content, html=html, text=text, headers=headers, attachments=tuple(attachments)
        )
