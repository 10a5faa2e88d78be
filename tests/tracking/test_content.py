"""A delivery's tracked copy: which links are rewritten, where the pixel goes, the
List-Unsubscribe pair and tracked attachments."""

import uuid
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

from posthouse.mime.builder import MimeAttachment, MimeContent, build_message
from posthouse.tracking.content import DeliveryUrls, TrackingOptions, TrackingPlan
from posthouse.tracking.tokens import TokenKind, TokenSigner

BASE = "https://t.posthouse.test"
DELIVERY = uuid.UUID("01932f6e-8f1a-7c3b-9d2e-4a5b6c7d8e9f")
SIGNER = TokenSigner(("secret",))
URLS = DeliveryUrls(public_url=BASE, signer=SIGNER, mailto_domain="bounces.shop.example")
HTML = (
    '<p><a href="https://shop.example/a?x=1&amp;y=2">Shop</a> '
    "<A HREF='http://shop.example/b'>B</A> "
    '<a href="https://shop.example/a?x=1&amp;y=2">again</a> '
    '<a href="mailto:help@shop.example">mail</a> <a href="tel:+1555">call</a> '
    f'<a href="#top">top</a> <a href="{BASE}/u/already">unsubscribe</a></p>'
)


def content(**changes: object) -> MimeContent:
    fields: dict[str, object] = {
        "from_email": "no-reply@shop.example",
        "from_name": None,
        "to": [(None, "alice@example.com")],
        "cc": [],
        "reply_to": [],
        "subject": "Hello",
        "html": HTML,
        "text": None,
        "message_id": "<m@shop.example>",
        "date": datetime(2026, 12, 4, tzinfo=UTC),
    }
    fields.update(changes)
    return MimeContent(**fields)  # type: ignore[arg-type]


def click(position: int) -> str:
    return f"{BASE}/t/c/{SIGNER.sign(TokenKind.CLICK, DELIVERY, position)}"


class TestTrackingPlan:
    def test_html_links_become_click_urls_and_the_rest_is_left_alone(self) -> None:
        plan = TrackingPlan(content(), TrackingOptions(html_clicks=True), BASE)

        copy = plan.copy(DELIVERY, URLS)

        assert plan.targets == ["https://shop.example/a?x=1&y=2", "http://shop.example/b"]
        assert copy.html is not None
        assert copy.html.count(click(0)) == 2
        assert copy.html.count(click(1)) == 1
        for kept in ("mailto:help@shop.example", "tel:+1555", "#top", f"{BASE}/u/already"):
            assert kept in copy.html
        assert "shop.example/a" not in copy.html
        # The generated text part shows the targets as written, not tracking URLs.
        assert copy.text is not None
        assert "https://shop.example/a?x=1&y=2" in copy.text
        assert "/t/c/" not in copy.text

    def test_text_links_are_rewritten_only_when_asked(self) -> None:
        text = "See https://shop.example/a?x=1&y=2. Or (https://shop.example/c)!"
        html_only = TrackingPlan(content(text=text), TrackingOptions(html_clicks=True), BASE)
        both = TrackingPlan(
            content(text=text), TrackingOptions(html_clicks=True, text_clicks=True), BASE
        )

        assert html_only.copy(DELIVERY, URLS).text == text
        assert both.targets[2] == "https://shop.example/c"
        assert both.copy(DELIVERY, URLS).text == f"See {click(0)}. Or ({click(2)})!"

    def test_the_pixel_goes_before_the_end_of_the_body_once(self) -> None:
        document = "<html><body><p>Hi</p></body></html>"
        plan = TrackingPlan(content(html=document), TrackingOptions(opens=True), BASE)

        copy = plan.copy(DELIVERY, URLS)

        pixel = f"{BASE}/t/o/{SIGNER.sign(TokenKind.OPEN, DELIVERY)}"
        assert copy.html is not None
        assert copy.html.startswith('<html><body><p>Hi</p><img src="' + pixel)
        assert copy.html.endswith("</body></html>")
        assert plan.targets == []

    def test_unsubscribe_adds_the_rfc_8058_pair(self) -> None:
        plan = TrackingPlan(
            content(headers={"List-Unsubscribe": "<https://old.example>", "X-A": "b"}),
            TrackingOptions(unsubscribe=True),
            BASE,
        )

        headers = plan.copy(DELIVERY, URLS).headers

        token = SIGNER.sign(TokenKind.UNSUBSCRIBE, DELIVERY)
        assert headers == {
            "X-A": "b",
            "List-Unsubscribe": f"<{BASE}/u/{token}>, <mailto:u-{token}@bounces.shop.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        parsed = BytesParser(policy=policy.strict).parsebytes(
            build_message(plan.copy(DELIVERY, URLS))
        )
        assert parsed["List-Unsubscribe"] == headers["List-Unsubscribe"]

    def test_tracked_attachments_become_links(self) -> None:
        files = (
            MimeAttachment("invoice.pdf", "application/pdf", b"%PDF"),
            MimeAttachment("terms.txt", "text/plain", b"terms"),
        )
        plan = TrackingPlan(
            content(attachments=files), TrackingOptions(tracked_attachments=frozenset({0})), BASE
        )

        copy = plan.copy(DELIVERY, URLS)

        url = f"{BASE}/t/a/{SIGNER.sign(TokenKind.ATTACHMENT, DELIVERY, 0)}"
        assert [a.filename for a in copy.attachments] == ["terms.txt"]
        assert f'<a href="{url}">invoice.pdf</a>' in str(copy.html)
        assert f"- invoice.pdf: {url}" in str(copy.text)

    def test_copies_differ_only_by_their_tokens(self) -> None:
        plan = TrackingPlan(content(), TrackingOptions(opens=True, html_clicks=True), BASE)
        other = uuid.UUID(int=DELIVERY.int + 1)

        first, second = plan.copy(DELIVERY, URLS), plan.copy(other, URLS)

        assert first.html != second.html
        assert (first.subject, first.message_id) == (second.subject, second.message_id)


class TestHookChain:
    def test_tracking_applies_to_the_copy_an_earlier_hook_made(self) -> None:
        from dataclasses import replace

        from posthouse.config import Settings
        from posthouse.db.models import Message
        from posthouse.delivery.content import HookChain
        from posthouse.tracking.hook import TrackingHook

        class Greeting:
            def customise(
                self,
                message: Message,
                content: MimeContent,
                *,
                recipient: str,
                delivery_id: uuid.UUID,
            ) -> MimeContent | None:
                return replace(content, html=f"<p>Hi {recipient}</p>{content.html}")

        message = Message(
            id=uuid.uuid4(),
            track_opens=True,
            track_clicks=True,
            track_text_clicks=False,
            unsubscribe=False,
        )
        settings = Settings(_env_file=None, public_url=BASE, secret_key="secret")
        chain = HookChain(Greeting(), TrackingHook(settings))

        copy = chain.customise(
            message, content(), recipient="ann@example.com", delivery_id=DELIVERY
        )
        untouched = HookChain(Greeting()).customise(
            message, content(), recipient="ann@example.com", delivery_id=DELIVERY
        )

        assert copy is not None
        assert str(copy.html).startswith("<p>Hi ann@example.com</p>")
        assert click(0) in str(copy.html)
        assert f"{BASE}/t/o/" in str(copy.html)
        assert untouched is not None
        assert "/t/" not in str(untouched.html)
