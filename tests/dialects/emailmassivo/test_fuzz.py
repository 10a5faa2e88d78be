"""Seeded random sends through seed 001's door: whatever the body holds, the answer is a
200 or a 4xx in the door's error body, never a 500 (the native door's alphabet)."""

import base64
import json
import random
from typing import Any

import httpx
import pytest

from tests.api.test_native_fuzz import address, anything, text
from tests.dialects.emailmassivo.conftest import SEND, SEND_BY_TEMPLATE, Account, mail


def party(r: random.Random) -> Any:
    return r.choice(
        [
            lambda: {"email": address(r), "name": text(r)},
            lambda: {"email": "alice@example.org", "name": r.choice([text(r), None, 5])},
            lambda: {"email": address(r)},
            lambda: anything(r),
        ]
    )()


def random_mail(r: random.Random) -> dict[str, Any]:
    """A valid body with one to three of its fields replaced."""
    fields = {
        "to": lambda: party(r),
        "from": lambda: party(r),
        "cc": lambda: ", ".join(str(address(r)) for _ in range(r.randint(0, 3))),
        "bcc": lambda: [str(address(r)) for _ in range(r.randint(0, 2))],
        "subject": lambda: text(r, 30),
        "previewTitle": lambda: text(r, 30),
        "html": lambda: text(r, 50),
        "text": lambda: text(r, 50),
        "headers": lambda: {r.choice(["X-Campaign", "Precedence", text(r, 5)]): text(r)},
        "attachments": lambda: [
            {
                r.choice(["a.pdf", text(r, 8), "../x"]): r.choice(
                    [base64.b64encode(r.randbytes(20)).decode(), text(r, 10)]
                )
            }
        ],
        "idTemplateMailUser": lambda: r.choice([1, -1, 2**70, "1"]),
        "params": lambda: {text(r, 5): anything(r)},
    }
    body = mail()
    for field in r.sample(sorted(fields), r.randint(1, 3)):
        body["mail"][field] = fields[field]() if r.random() < 0.8 else anything(r)
    if r.random() < 0.2:
        body["idempotencyKey"] = r.choice([text(r, 20), anything(r)])
    return body


@pytest.mark.parametrize("seed", range(80))
async def test_a_random_send_is_accepted_or_refused_in_the_doors_body(
    client: httpx.AsyncClient, account: Account, seed: int
) -> None:
    r = random.Random(seed)
    body = random_mail(r)
    path = SEND_BY_TEMPLATE if "idTemplateMailUser" in body["mail"] else SEND
    if path == SEND_BY_TEMPLATE:
        body["mail"].pop("html", None)

    response = await client.post(path, headers=account.headers, content=json.dumps(body))

    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    answer = response.json()
    if response.status_code == 200:
        assert isinstance(answer["uuid"], str)
    else:
        assert list(answer) == ["message", "error", "statusCode"]
        assert answer["statusCode"] == response.status_code
        assert answer["message"]
