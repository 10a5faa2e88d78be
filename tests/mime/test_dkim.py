"""DKIM signatures, checked by dkimpy's verifier against the published record."""

from collections.abc import Callable
from datetime import UTC, datetime

import dkim
import pytest

from posthouse.mime.builder import MimeAttachment, MimeContent, build_message
from posthouse.mime.dkim import DkimKeyPair, DkimSigner, dns_value, generate_key, signer

SELECTOR = "ph202611"
DOMAIN = "yourstore.example"


@pytest.fixture(scope="module")
def key() -> DkimKeyPair:
    return generate_key()


def published(key: DkimKeyPair) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` that knows only the domain's published DKIM record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode():
            return dns_value(key.public_key_b64).encode()
        return None

    return lookup


def message(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "from_email": f"no-reply@{DOMAIN}",
        "from_name": "Your Store",
        "to": [("Alice", "alice@example.com")],
        "cc": [(None, "manager@example.com")],
        "reply_to": [(None, f"support@{DOMAIN}")],
        "subject": "Welcome — to our store!",
        "html": "<h1>Thanks for joining</h1>",
        "text": None,
        "message_id": f"<abc123@{DOMAIN}>",
        "date": datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "in_reply_to": f"<older@{DOMAIN}>",
        "references": f"<first@{DOMAIN}> <older@{DOMAIN}>",
        "attachments": (MimeAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4 " * 500),),
    }
    fields.update(changes)
    return build_message(MimeContent(**fields))  # type: ignore[arg-type]


def signed_fields(signed: bytes) -> dict[bytes, bytes]:
    headers, _ = dkim.rfc822_parse(signed)
    return dkim.util.parse_tag_value(headers[0][1])


class TestDkimSigner:
    def test_signature_verifies_against_the_published_record(self, key: DkimKeyPair) -> None:
        signed = DkimSigner(
            domain=DOMAIN, selector=SELECTOR, private_key_pem=key.private_key_pem
        ).sign(message())

        assert signed.startswith(b"DKIM-Signature: ")
        assert dkim.verify(signed, dnsfunc=published(key))
        tags = signed_fields(signed)
        assert tags[b"c"] == b"relaxed/relaxed"
        assert tags[b"a"] == b"rsa-sha256"
        assert (tags[b"d"], tags[b"s"]) == (DOMAIN.encode(), SELECTOR.encode())

    def test_every_header_is_signed_and_the_address_and_mime_headers_oversigned(
        self, key: DkimKeyPair
    ) -> None:
        custom = {"X-Campaign": "spring", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(message(headers=custom))

        names = [h.strip() for h in signed_fields(signed)[b"h"].split(b":")]
        oversigned = (
            b"from",
            b"subject",
            b"reply-to",
            b"to",
            b"cc",
            b"date",
            b"message-id",
            b"in-reply-to",
            b"references",
            b"content-type",
            b"mime-version",
        )
        for name in oversigned:
            assert names.count(name) == 2, name
        assert {b"x-campaign", b"list-unsubscribe-post"} <= set(names)

    def test_a_callers_list_unsubscribe_is_signed(self, key: DkimKeyPair) -> None:
        # Issue 15: receivers act on List-Unsubscribe (RFC 8058), so it is signed like
        # every header posthouse writes.
        headers = {
            "List-Unsubscribe": "<https://yourstore.example/u/42>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(message(headers=headers))

        names = [h.strip() for h in signed_fields(signed)[b"h"].split(b":")]
        assert {b"list-unsubscribe", b"list-unsubscribe-post"} <= set(names)
        assert dkim.verify(signed, dnsfunc=published(key))
        changed = signed.replace(b"/u/42>", b"/u/43>")
        assert not dkim.verify(changed, dnsfunc=published(key))

    @pytest.mark.parametrize(
        "added",
        [
            b"From: attacker@evil.example\r\n",
            b"Subject: Your account is locked\r\n",
            b"Reply-To: attacker@evil.example\r\n",
            b"To: someone@evil.example\r\n",
            b"Cc: someone@evil.example\r\n",
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n",
            b"Message-ID: <other@evil.example>\r\n",
            b"In-Reply-To: <other@evil.example>\r\n",
            b"References: <other@evil.example>\r\n",
            b"Content-Type: text/plain\r\n",
            b"MIME-Version: 1.0\r\n",
        ],
    )
    def test_an_added_address_threading_or_mime_header_breaks_the_signature(
        self, key: DkimKeyPair, added: bytes
    ) -> None:
        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(message())
        # Insert the extra header after the signature block, where a relay would add it.
        end_of_signature = signed.index(b"\r\n", signed.index(b"b=")) + 2
        while signed[end_of_signature : end_of_signature + 1] == b" ":
            end_of_signature = signed.index(b"\r\n", end_of_signature) + 2
        tampered = signed[:end_of_signature] + added + signed[end_of_signature:]

        assert dkim.verify(signed, dnsfunc=published(key))
        assert not dkim.verify(tampered, dnsfunc=published(key))

    def test_a_changed_custom_header_breaks_the_signature(self, key: DkimKeyPair) -> None:
        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(
            message(headers={"X-Campaign": "spring"})
        )

        tampered = signed.replace(b"X-Campaign: spring", b"X-Campaign: autumn")

        assert dkim.verify(signed, dnsfunc=published(key))
        assert not dkim.verify(tampered, dnsfunc=published(key))

    def test_a_changed_body_breaks_the_signature(self, key: DkimKeyPair) -> None:
        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(message())

        tampered = signed.replace(b"invoice.pdf", b"invoice.exe")

        assert not dkim.verify(tampered, dnsfunc=published(key))

    def test_a_plain_text_message_without_cc_verifies(self, key: DkimKeyPair) -> None:
        plain = message(cc=[], reply_to=[], html=None, text="Hello", attachments=())

        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(plain)

        assert dkim.verify(signed, dnsfunc=published(key))
        names = signed_fields(signed)[b"h"].split(b" : ")
        assert b"content-transfer-encoding" in names
        # No Cc in the message: one entry signs its absence.
        assert names.count(b"cc") == 1

    def test_the_key_is_2048_bit_rsa(self, key: DkimKeyPair) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        loaded = load_pem_private_key(key.private_key_pem.encode(), password=None)

        assert loaded.key_size == 2048  # type: ignore[union-attr]


class TestCanonicalBody:
    @pytest.mark.parametrize(
        "body",
        [
            b"plain line\r\nsecond line\r\n",
            b"two  spaces and\ta tab\r\n",
            b"trailing space \r\ntrailing tab\t\r\n",
            b"ends with empty lines\r\n\r\n\r\n",
            b"no final line end",
            b"no final line end but a space ",
            b"bare\nline feeds\n",
            b"",
        ],
    )
    def test_any_body_verifies_with_dkimpy(self, key: DkimKeyPair, body: bytes) -> None:
        raw = (
            f"From: no-reply@{DOMAIN}\r\nTo: alice@example.com\r\nSubject: s\r\n"
            f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@{DOMAIN}>\r\n\r\n"
        ).encode() + body

        signed = signer(DOMAIN, SELECTOR, key.private_key_pem).sign(raw)

        assert dkim.verify(signed, dnsfunc=published(key))
