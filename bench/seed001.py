"""Seed 001's door against the native door: the same email accepted through each, in
process (httpx on the ASGI app, SQLite in a temporary directory), in alternating rounds.

The email: one recipient, one cc, ~5 KB of HTML, one 20 KB attachment (base64 in seed
001's JSON, a file part in the native multipart); a counter in the subject, so that no
two requests are the same email (seed 001's one-hour rule would answer a repeat without
storing it); each request carries an idempotency key (``--no-key``: none). Prints each
round's median milliseconds per accepted send, then the medians of the rounds and the
ratio seed001/native: what the door's translation (JSON and base64 instead of multipart,
a workspace key and a sender lookup instead of a sender-bound token pair) costs.

    .venv/bin/python bench/seed001.py [--rounds 5] [--sends 200] [--no-key]
"""

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from posthouse.accounts.service import add_sender, create_workspace_key  # noqa: E402
from posthouse.app import create_app  # noqa: E402
from posthouse.config import Settings  # noqa: E402
from posthouse.db.migrate import upgrade  # noqa: E402

HTML = "<p>" + "Thank you for your order. " * 200 + "</p>"
ATTACHMENT = bytes(range(256)) * 80
SENDER = "no-reply@yourstore.example"


async def native(client: httpx.AsyncClient, tokens: dict[str, str], n: int, keyed: bool) -> None:
    payload = {
        "from": SENDER,
        "to": ["alice@example.org"],
        "cc": ["bob@example.org"],
        "subject": f"Order {n}",
        "body": HTML,
    }
    key = {"Idempotency-Key": f"order-{n}"} if keyed else {}
    response = await client.post(
        "/api/v1/emails",
        headers={**tokens, **key},
        files=[
            ("payload", (None, json.dumps(payload), "application/json")),
            ("attachments", ("invoice.pdf", ATTACHMENT, "application/pdf")),
        ],
    )
    assert response.status_code == 202, response.text


async def seed001(client: httpx.AsyncClient, key: dict[str, str], n: int, keyed: bool) -> None:
    body = {
        "idempotencyKey": f"order-{n}" if keyed else None,
        "mail": {
            "to": {"email": "alice@example.org"},
            "from": {"email": SENDER},
            "cc": "bob@example.org",
            "subject": f"Order {n}",
            "html": HTML,
            "attachments": [{"invoice.pdf": base64.b64encode(ATTACHMENT).decode()}],
        },
    }
    response = await client.post("/api/v1/external-mails/send", headers=key, json=body)
    assert response.status_code == 200, response.text


async def main(rounds: int, sends: int, keyed: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            _env_file=None,
            database_url=url,
            delivery_url=f"maildir:{directory}/maildir",
            require_verified_domains=False,
            rate_limit_per_ip=0,
            rate_limit_per_key=0,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with app.state.sessionmaker.begin() as session:
                issued = await add_sender(session, workspace_name="bench", email=SENDER)
                key = await create_workspace_key(session, workspace_name="bench")
            tokens = {
                "X-Api-Access-Token": issued.access_token,
                "X-Api-Secret-Token": issued.secret_token,
            }
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                doors = {
                    "native": lambda n: native(client, tokens, n, keyed),
                    "seed001": lambda n: seed001(client, {"X-Api-Key": key.token}, n, keyed),
                }
                medians: dict[str, list[float]] = {name: [] for name in doors}
                counter = 0
                for number in range(rounds):
                    order = list(doors) if number % 2 == 0 else list(reversed(doors))
                    for name in order:
                        timings = []
                        for _ in range(sends):
                            counter += 1
                            started = time.perf_counter()
                            await doors[name](counter)
                            timings.append((time.perf_counter() - started) * 1000)
                        medians[name].append(statistics.median(timings))
                        print(f"round {number + 1} {name:8} {medians[name][-1]:.2f} ms/send")
    native_ms = statistics.median(medians["native"])
    door_ms = statistics.median(medians["seed001"])
    print(f"median native {native_ms:.2f} ms, seed001 {door_ms:.2f} ms")
    print(f"seed001/native {door_ms / native_ms:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument(
        "--no-key",
        action="store_true",
        help="send without idempotency keys (seed 001 then looks for a duplicate instead)",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.sends, keyed=not arguments.no_key))
