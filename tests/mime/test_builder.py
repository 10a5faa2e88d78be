"""The MIME builder: every message re-parses under email.policy.strict with no defects."""

import random
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

import pytest

from posthouse.delivery.transports.sendmail import data_payload
from posthouse.mime.builder import MimeAttachment, MimeContent, build_message
from posthouse.mime.dkim import generate_key, signer

DATE = datetime(2026, 11, 22, 13, 5, 9, tzinfo=UTC)
DKIM_KEY = generate_key(1024)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def content(**overrides: object) -> MimeContent:
    fields: dict[str, object] = {
        "from_email": "no-reply@yourstore.example",
        "from_name": "Your Store",
        "to": [(None, "alice@example.com")],
        "cc": [],
        "reply_to": [],
        "subject": "Welcome to our store!",
        "html": "<h1>Thanks for joining</h1><p>We're glad you're here.</p>",
        "text": None,
        "message_id": "<01JABCDEF1234XYZ@yourstore.example>",
        "date": DATE,
    }
    fields.update(overrides)
    return MimeContent(**fields)  # type: ignore[arg-type]


def assert_crlf_only(data: bytes) -> None:
    """No bare CR or LF: the worker hands build_message's output to SMTP unchecked."""
    pairs = data.count(b"\r\n")
    assert (data.count(b"\r"), data.count(b"\n")) == (pairs, pairs)


def parse(data: bytes) -> EmailMessage:
    """Parse strictly, then touch every header of every part: none may carry a defect."""
    assert data.isascii()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert_crlf_only(data)
    message = BytesParser(policy=policy.strict).parsebytes(data)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert part.defects == [], part.defects
        for name, value in part.items():
            assert getattr(value, "defects", ()) == (), (name, value.defects)
    return message


def built(**overrides: object) -> EmailMessage:
    return parse(build_message(content(**overrides)))


class TestStructure:
    def test_html_only_gets_a_text_alternative_derived_from_it(self) -> None:
        message = built(
            html='<h1>Thanks &amp; welcome</h1><p>Visit <a href="https://shop.example/a">us</a>'
            "<br>today</p><style>p{}</style><ul><li>one</li><li>two</li></ul>"
        )

        assert message.get_content_type() == "multipart/alternative"
        plain, html = message.iter_parts()
        assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        text = plain.get_content()
        assert "Thanks & welcome" in text
        assert "us (https://shop.example/a)" in text
        assert "- one\r\n- two" in text
        assert "<" not in text
        assert "p{}" not in text
        assert html.get_content().startswith(
            '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><h1>Thanks &amp;'
        )
        assert html.get_content().rstrip().endswith("</ul></body></html>")

    @pytest.mark.parametrize(
        ("html", "sent"),
        [
            (
                "<body><p>Hi</p></body>",
                '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><p>Hi</p></body>'
                "</html>",
            ),
            (
                "<!doctype html><HTML><body><p>Hi</p></body></HTML>",
                "<!doctype html><HTML><body><p>Hi</p></body></HTML>",
            ),
        ],
    )
    def test_a_whole_document_is_sent_as_it_is_and_a_body_gets_a_head(
        self, html: str, sent: str
    ) -> None:
        _, part = built(html=html).iter_parts()

        assert part.get_content().rstrip() == sent

    def test_a_given_text_part_is_used_as_is(self) -> None:
        message = built(text="Plain words.\nSecond line.")

        plain, _ = message.iter_parts()
        # The parser keeps the CRLF line ends of the wire.
        assert plain.get_content().rstrip() == "Plain words.\r\nSecond line."

    @pytest.mark.parametrize(
        ("text", "encoding"),
        [
            ("Short ASCII lines.\nA second one.", "7bit"),
            ("A line longer than seventy-eight characters " + "x" * 40, "quoted-printable"),
            ("Grüße aus Köln, with a few accented letters.", "quoted-printable"),
            ("Привет, мир! Это сообщение почти целиком не ASCII.", "base64"),
        ],
    )
    def test_text_parts_are_sent_in_the_lightest_encoding_that_fits(
        self, text: str, encoding: str
    ) -> None:
        message = built(text=text, html="<p>" + "y" * 200 + "</p>")

        plain, html = message.iter_parts()
        assert plain["Content-Transfer-Encoding"] == encoding
        assert plain.get_content().replace("\r\n", "\n").rstrip() == text
        # A long line of HTML is wrapped by quoted-printable.
        assert html["Content-Transfer-Encoding"] == "quoted-printable"
        assert html.get_content().rstrip().endswith("<body><p>" + "y" * 200 + "</p></body></html>")

    def test_text_only_is_a_single_part(self) -> None:
        message = built(html=None, text="Just text")

        assert message.get_content_type() == "text/plain"
        assert message.get_content_charset() == "utf-8"
        assert message.get_content().strip() == "Just text"

    def test_attachments_keep_bytes_content_types_and_non_ascii_names(self) -> None:
        long_name = "Überweisungsbestätigung für die Bestellung Nr. 2026-11-22 (Kopie) ä.pdf"
        files = (
            MimeAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4 invoice"),
            MimeAttachment("Rechnung März €.pdf", "application/pdf", b"%PDF rechnung"),
            MimeAttachment(long_name, "application/pdf", b"%PDF long"),
            MimeAttachment('quote "me", ok.csv', "text/csv", b"a,b\r\n1,2\r\n"),
            MimeAttachment("photo.png", "image/png", PNG),
        )

        message = built(attachments=files)

        assert message.get_content_type() == "multipart/mixed"
        body, *parts = message.iter_parts()
        assert body.get_content_type() == "multipart/alternative"
        assert [
            (p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in parts
        ] == [(a.filename, a.content_type, a.data) for a in files]
        assert all(p.get_content_disposition() == "attachment" for p in parts)
        raw = build_message(content(attachments=files)).decode()
        assert "filename*=utf-8''Rechnung%20M%C3%A4rz%20%E2%82%AC.pdf" in raw
        assert "filename*0*=utf-8''" in raw  # RFC 2231 continuations for the long name

    def test_inline_images_are_related_to_the_html_by_content_id(self) -> None:
        files = (
            MimeAttachment("logo.png", "image/png", PNG, content_id="logo@yourstore"),
            MimeAttachment("terms.pdf", "application/pdf", b"%PDF terms"),
        )

        message = built(html='<p><img src="cid:logo@yourstore" alt="Logo"></p>', attachments=files)

        body, terms = message.iter_parts()
        plain, related = body.iter_parts()
        assert related.get_content_type() == "multipart/related"
        html, logo = related.iter_parts()
        assert html.get_content_type() == "text/html"
        assert logo["Content-ID"] == "<logo@yourstore>"
        assert logo.get_content_disposition() == "inline"
        assert logo.get_content() == PNG
        assert terms.get_filename() == "terms.pdf"
        assert "Logo" in plain.get_content()


class TestHeaders:
    def test_date_message_id_and_threading(self) -> None:
        message = built(
            in_reply_to="<parent@yourstore.example>",
            references="<root@yourstore.example> <parent@yourstore.example>",
        )

        assert parsedate_to_datetime(message["Date"]) == DATE
        assert message["Message-ID"] == "<01JABCDEF1234XYZ@yourstore.example>"
        assert message["In-Reply-To"] == "<parent@yourstore.example>"
        assert message["References"].split() == [
            "<root@yourstore.example>",
            "<parent@yourstore.example>",
        ]
        assert message["MIME-Version"] == "1.0"

    def test_utf8_subjects_and_display_names(self) -> None:
        message = built(
            from_name="Bücherstube Müller",
            to=[("José Ñúñez", "jose@example.com"), ("李小龍", "lee@example.com")],
            cc=[('O\'Brien, "Pat"', "pat@example.com")],
            reply_to=[("Support 🛟", "support@yourstore.example")],
            subject="Grüße aus Köln – 你好 👋",
        )

        assert message["Subject"] == "Grüße aus Köln – 你好 👋"
        assert message["From"].addresses[0].display_name == "Bücherstube Müller"
        assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
            ("José Ñúñez", "jose@example.com"),
            ("李小龍", "lee@example.com"),
        ]
        assert message["Cc"].addresses[0].display_name == 'O\'Brien, "Pat"'
        assert message["Reply-To"].addresses[0].display_name == "Support 🛟"

    @pytest.mark.parametrize(
        "subject",
        ["Grüße aus Köln – 你好 👋 " * 6, "ü" * 200, "Ihre Bestellung №12345 ist unterwegs 🚚"],
    )
    def test_lines_with_encoded_words_stay_within_76_characters(self, subject: str) -> None:
        data = build_message(
            content(subject=subject, from_name="Bücherstube Müller und Söhne GmbH & Co. KG " * 2)
        )

        head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        encoded = [line for line in head.split("\r\n") if "=?" in line]
        assert encoded
        assert max(map(len, encoded)) <= 76, max(encoded, key=len)
        message = parse(data)
        assert message["Subject"] == subject

    def test_bcc_never_appears(self) -> None:
        data = build_message(content(to=[(None, "alice@example.com")]))

        assert b"\r\nBcc:" not in data
        assert "Bcc" not in parse(data)

    def test_custom_headers_are_written(self) -> None:
        message = built(headers={"X-Campaign": "spring sale", "X-Note": "naïve café"})

        assert message["X-Campaign"] == "spring sale"
        assert message["X-Note"] == "naïve café"


AWKWARD = [
    "",
    " ",
    "plain",
    '"quoted"',
    "comma, separated",
    "semi;colon",
    "back\\slash",
    "=?utf-8?q?not-an-encoded-word?=",
    "(comment)",
    "<angle>",
    "emoji 🎉🎉🎉",
    "ZWJ 👩‍👩‍👧‍👦",
    "Ünïcödé",
    "中文字符",
    "العربية",
    "tab\there",
    "x" * 120,
    "word " * 40,
    "é" * 100,
    "a" * 990,
    "@",
    ":",
    "..",
    "?=",
    "=?",
    "%41*",
    "'single'",
    "non\u00a0breaking",
    "a.b",
    "\u200b",
]


class TestAwkwardInputs:
    @pytest.mark.parametrize("seed", range(150))
    def test_every_combination_reparses_and_round_trips(self, seed: int) -> None:
        rng = random.Random(seed)

        def pick() -> str:
            return "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 3)))

        subject = pick().replace("\t", " ").strip() or "subject"
        names = [pick().replace("\t", " ").strip() or None for _ in range(3)]
        filename = (pick().replace("\t", " ").replace("\\", "_").strip(" .") or "file")[:200]
        html = f"<p>{pick()}</p>" if rng.random() < 0.8 else None
        files = (MimeAttachment(filename + ".bin", "application/octet-stream", pick().encode()),)

        data = build_message(
            content(
                subject=subject,
                from_name=names[0],
                to=[(names[1], "alice@example.com"), (names[2], "bob@example.com")],
                html=html,
                text=None if html else pick(),
                attachments=files if rng.random() < 0.7 else (),
            )
        )
        message = parse(data)

        assert _normal(message["Subject"]) == _normal(subject)
        assert [name or None for name in _display_names(data, "To")] == [
            _normal(n) if n else None for n in names[1:]
        ]
        for part in message.iter_attachments():
            assert part.get_filename() == files[0].filename
            assert part.get_payload(decode=True) == files[0].data


def _normal(value: str) -> str:
    """Folding may turn runs of spaces into one; compare with that in mind."""
    return " ".join(value.split())


def _display_names(data: bytes, header: str) -> list[str]:
    """Display names decoded as RFC 2047 says: the space between two adjacent encoded words
    is dropped. (Python 3.11's policy parser keeps it inside phrases, a stdlib bug.)"""
    raw = BytesParser(policy=policy.compat32).parsebytes(data, headersonly=True)[header]
    return [_normal(str(make_header(decode_header(name)))) for name, _ in getaddresses([str(raw)])]


LINE_BREAKS = ["\r\n", "\n", "\r", "\r\r\n", "\n\r", "\n.\n", "\r\n.\r\n", " \r\n", "\t\n"]


class TestLineEndings:
    """The worker tells the SMTP transports (and the DKIM signer) that every line of
    build_message's output ends in CRLF, so they skip checking: bodies with every mix of
    line breaks must come out with CRLF only, in every transfer encoding."""

    @pytest.mark.parametrize("seed", range(60))
    def test_bodies_with_any_line_breaks_come_out_crlf_only(self, seed: int) -> None:
        rng = random.Random(seed)

        def body() -> str:
            pieces = [
                rng.choice(AWKWARD + ["<p>", "</td>", "."]) for _ in range(rng.randint(1, 12))
            ]
            return "".join(piece + rng.choice(LINE_BREAKS) for piece in pieces)

        html = body() if rng.random() < 0.7 else None
        text = body() if html is None or rng.random() < 0.5 else None
        data = build_message(content(html=html, text=text))

        assert_crlf_only(data)
        assert data_payload(data, crlf=True) == data_payload(data)
        signed = signer("yourstore.example", "s1", DKIM_KEY.private_key_pem).sign(data, crlf=True)
        assert_crlf_only(signed)
        assert data_payload(signed, crlf=True) == data_payload(signed)
