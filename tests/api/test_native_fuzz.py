"""Seeded random sends: whatever the payload holds, the answer is a 202 or a 4xx in seed
000's error shape, never a 500. The alphabet leans on what has broken mail software
before: quotes and angle brackets in names, encoded-word markers, combining marks,
non-characters, line separators and lone surrogates."""

import json
import random
from typing import Any

import httpx
import pytest

from tests.conftest import SenderTokens, multipart

ALPHABET = [
    "a", "Z", " ", "<", ">", '"', "'", ",", ";", "@", ".", "\\", "=?", "?=", ":", "(", ")",
    "[", "]", "\t", "-", "_", "%", "&", "#", "xn--", "\u00e9", "\u4e2d", "\U0001f600",
    "\u200b", "\ufeff", "\u0301", "\uffff", "\U0010ffff", "\x7f", "\x85", "\u2028",
    "\ud800", "\udc00",
]  # fmt: skip
ODD_VALUES: list[Any] = [None, 0, -1, 2**70, 1e308, True, [], {}]


def text(r: random.Random, longest: int = 12) -> str:
    # A few characters per string, so that one odd character is not always hidden behind
    # another that is refused first.
    letters = ["a", "b", *r.sample(ALPHABET, 3)]
    return "".join(r.choice(letters) for _ in range(r.randint(0, longest)))


def address(r: random.Random) -> Any:
    return r.choice(
        [
            lambda: text(r),
            lambda: f"{text(r, 4)}a@example.com",
            lambda: f"{text(r, 6)} <bob@example.com>",
            lambda: f"alice@{text(r, 6)}.com",
            lambda: f'"{text(r, 6)}" <c@ex{text(r, 3)}.org>',
            lambda: r.choice(ODD_VALUES),
            lambda: "ok@example.com",
        ]
    )()


def anything(r: random.Random) -> Any:
    return r.choice(
        [
            lambda: text(r),
            lambda: [address(r) for _ in range(r.randint(0, 3))],
            lambda: {text(r, 5): text(r)},
            lambda: r.choice(ODD_VALUES),
            lambda: address(r),
        ]
    )()


VALID: dict[str, Any] = {
    "from": "Store <no-reply@yourstore.example>",
    "to": ["alice@example.com"],
    "subject": "Your order",
    "body": "<p>Hello</p>",
}


def random_send(r: random.Random) -> tuple[dict[str, Any], list[tuple[str, bytes, str]]]:
    """A valid send with one or two of its fields replaced, so that most of the odd
    values get past the first check and reach storage, MIME and the response."""
    fields = {
        "from": lambda: address(r),
        "to": lambda: [address(r) for _ in range(r.randint(0, 3))],
        "cc": lambda: [address(r) for _ in range(r.randint(0, 2))],
        "bcc": lambda: [address(r)],
        "replyTo": lambda: [address(r)],
        "subject": lambda: text(r, 30),
        "body": lambda: text(r, 50),
        "text": lambda: text(r, 50),
        "headers": lambda: {r.choice(["X-Campaign", text(r, 5)]): text(r)},
    }
    payload = dict(VALID)
    for field in r.sample(sorted(fields), r.randint(1, 2)):
        payload[field] = fields[field]() if r.random() < 0.8 else anything(r)
    files = []
    if r.random() < 0.3:
        # A multipart filename travels as UTF-8: no lone surrogates there.
        name = r.choice(["invoice.pdf", text(r, 8).encode("utf-8", "replace").decode(), "../x"])
        data = b"%PDF" + r.randbytes(r.randint(0, 50))
        files.append((name, data, r.choice(["application/pdf", "text/plain", "bad type", ""])))
    return payload, files


@pytest.mark.parametrize("seed", range(150))
async def test_a_random_send_is_accepted_or_refused_in_the_error_shape(
    client: httpx.AsyncClient, sender: SenderTokens, seed: int
) -> None:
    payload, files = random_send(random.Random(seed))

    response = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart(json.dumps(payload), files)
    )

    assert response.status_code == 202 or 400 <= response.status_code < 500, response.text
    if response.status_code != 202:
        body = response.json()
        assert body["status"] == response.status_code
        assert isinstance(body["message"], str)
        assert body["message"]
