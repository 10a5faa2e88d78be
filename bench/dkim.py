"""DKIM signing cost per message: dkimpy alone versus posthouse's signer (dkimpy's
canonicalization with OpenSSL's RSA), 2048-bit key, on a typical built message.

    .venv/bin/python -m bench.dkim [--messages 300]
"""

import argparse
import time
from datetime import UTC, datetime

import dkim

from posthouse.mime.builder import MimeAttachment, MimeContent, build_message
from posthouse.mime.dkim import OVERSIGNED_HEADERS, generate_key, signer


def _message(attachment_bytes: int) -> bytes:
    return build_message(
        MimeContent(
            from_email="no-reply@yourstore.example",
            from_name="Your Store",
            to=[("Alice", "alice@example.com")],
            cc=[],
            reply_to=[(None, "support@yourstore.example")],
            subject="Welcome to our store!",
            html="<h1>Thanks for joining</h1>" + "<p>We're glad you're here.</p>" * 40,
            text=None,
            message_id="<bench@yourstore.example>",
            date=datetime.now(UTC),
            attachments=(MimeAttachment("invoice.pdf", "application/pdf", b"%" * attachment_bytes),)
            if attachment_bytes
            else (),
        )
    )


def _per_message_ms(sign: object, message: bytes, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        sign(message)  # type: ignore[operator]
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    key = generate_key()
    ours = signer("yourstore.example", "ph202611", key.private_key_pem)
    pem = key.private_key_pem.encode()

    def dkimpy_sign(message: bytes) -> bytes:
        headers, _ = dkim.rfc822_parse(message)
        include = [name.lower() for name, _ in headers] + list(OVERSIGNED_HEADERS)
        return dkim.sign(
            message,
            b"ph202611",
            b"yourstore.example",
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )

    print(f"{'message':<24}{'dkimpy ms':>12}{'posthouse ms':>14}{'ratio':>8}")
    for label, size in (("6 KB html", 0), ("6 KB html + 200 KB pdf", 200_000)):
        message = _message(size)
        slow = _per_message_ms(dkimpy_sign, message, max(20, args.messages // 5))
        fast = _per_message_ms(ours.sign, message, args.messages)
        print(f"{label:<24}{slow:>12.2f}{fast:>14.2f}{slow / fast:>7.1f}x")
    print(f"posthouse signer: {1000 / fast:.0f} signatures/s on one core (large message)")


if __name__ == "__main__":
    main()
