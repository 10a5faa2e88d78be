"""CPU per accepted send through the api's request path, in process (issue 15).

The seed-000 request (one recipient, 5 KB of HTML, a 20 KB attachment) is posted N
times through httpx's ASGI transport to the real app on a scratch SQLite database, and
the process CPU time is divided by the sends. No network, no worker: what it shows is
the cost of reading, checking and storing a send, the path issue 15 changed (the body is
read before the database, addresses are parsed without regular expressions, the
payload's values are counted before parsing).

Compare two checkouts in alternating turns, so the machine's load hits both alike:

    git archive <commit> src migrations alembic.ini | tar -x -C /tmp/old
    for i in 1 2 3; do
      .venv/bin/python bench/request_path.py --src /tmp/old/src --label old
      .venv/bin/python bench/request_path.py --label new
    done
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def run(sends: int, label: str) -> None:
    import httpx

    from posthouse.accounts.service import add_sender
    from posthouse.app import create_app
    from posthouse.config import Settings
    from posthouse.db.migrate import upgrade

    directory = tempfile.mkdtemp(prefix="posthouse-bench-")
    url = f"sqlite+aiosqlite:///{directory}/bench.db"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(
        _env_file=None,
        database_url=url,
        rate_limit_per_ip=0,
        rate_limit_per_key=0,
        require_verified_domains=False,
    )
    app = create_app(settings)
    html = "<p>" + "Thanks for your order. " * 220 + "</p>"
    attachment = bytes(range(256)) * 80
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker.begin() as session:
            issued = await add_sender(session, workspace_name="bench", email="shop@bench.example")
        headers = {
            "X-Api-Access-Token": issued.access_token,
            "X-Api-Secret-Token": issued.secret_token,
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def send(number: int) -> None:
                payload = (
                    '{"from": "Shop <shop@bench.example>", "to": ["Alice <alice@example.com>"],'
                    f' "subject": "Order {number}", "body": "{html}"}}'
                )
                response = await client.post(
                    "/api/v1/emails",
                    headers=headers,
                    files=[
                        ("payload", (None, payload, "application/json")),
                        ("attachments", ("invoice.pdf", attachment, "application/pdf")),
                    ],
                )
                assert response.status_code == 202, response.text

            for number in range(50):  # warm-up: caches, statements, the allocator
                await send(number)
            started_cpu, started = time.process_time(), time.perf_counter()
            for number in range(sends):
                await send(50 + number)
            cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    print(
        f"{label}: {sends} sends, {cpu / sends * 1e3:.3f} ms CPU and "
        f"{wall / sends * 1e3:.3f} ms wall per send"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--src", help="the src/ directory of another checkout to measure")
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    # Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    asyncio.run(run(args.sends, args.label))


if __name__ == "__main__":
    main()
