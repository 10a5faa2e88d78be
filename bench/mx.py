"""Benchmark of direct MX delivery (issue 4) against relay delivery, in the same run.

Both modes deliver the same emails (one recipient each, spread over 20 domains, ~5 KB
of HTML) with the same worker settings, from a PostgreSQL queue, to Postfix's smtp-sink:

- relay: POSTHOUSE_DELIVERY_URL=smtp://127.0.0.1:PORT, one sink;
- mx: POSTHOUSE_DELIVERY_URL=mx:, a stub DNS server answering MX for d0..d19.bench.example
  with mx.dN pointing at 127.0.0.(N+2), one smtp-sink per address on one port.

The emails are accepted through the API in-process, then a worker (in this process) is
timed draining the queue. Modes alternate, ``--repeat`` times each; the best and median
deliveries per second of each are printed with their ratio. The MX mode runs twice: with
the default per-destination caps (connections, sends/s) and with the caps lifted, so
the cost of the caps and the cost of the MX machinery show separately.

    .venv/bin/python bench/mx.py [--emails 4000] [--repeat 3]
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from tests.dns_server import DnsServer  # noqa: E402

from bench.spine import (  # noqa: E402
    Processes,
    free_port,
    load_average,
    port_open,
    reset_database,
    seed_html,
    wait_until,
)
from posthouse.accounts.service import add_sender  # noqa: E402
from posthouse.app import create_app  # noqa: E402
from posthouse.config import Settings  # noqa: E402
from posthouse.db.migrate import upgrade  # noqa: E402
from posthouse.delivery.transports.factory import create_transport  # noqa: E402
from posthouse.delivery.worker import Worker  # noqa: E402

DOMAINS = 20
SENDER = "no-reply@bench.posthouse.example"


def start_sinks(processes: Processes, port: int, addresses: list[str]) -> None:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    for address in addresses:
        processes.start(f"sink-{address}", [binary, *user, f"{address}:{port}", "1024"])
    for address in addresses:
        wait_until(f"smtp-sink on {address}", lambda a=address: port_open_at(a, port))


def port_open_at(address: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((address, port)) == 0


def stub_dns(port: int) -> DnsServer:
    dns = DnsServer().start()
    for n in range(DOMAINS):
        dns.add(f"d{n}.bench.example", "MX", f"10 mx.d{n}.bench.example.")
        dns.add(f"mx.d{n}.bench.example", "A", f"127.0.0.{n + 2}")
    return dns


def clear_queue(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE event, delivery_attempt, delivery, attachment, message CASCADE"
        )
        connection.execute("ANALYZE")


async def enqueue(settings: Settings, emails: int, tokens: dict[str, str]) -> None:
    app = create_app(settings)
    html = seed_html()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def one(i: int) -> None:
                payload = json.dumps(
                    {
                        "from": SENDER,
                        "to": [f"user{i}@d{i % DOMAINS}.bench.example"],
                        "subject": f"Order {i}",
                        "body": html,
                    }
                )
                response = await client.post(
                    "/api/v1/emails",
                    headers=tokens,
                    files=[("payload", (None, payload, "application/json"))],
                )
                if response.status_code != 202:
                    raise RuntimeError(response.text)

            for start in range(0, emails, 50):
                await asyncio.gather(*(one(i) for i in range(start, min(emails, start + 50))))


async def drain(settings: Settings) -> tuple[int, float]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = create_transport(settings)
        worker = Worker(sessionmaker=app.state.sessionmaker, transport=transport, settings=settings)
        started = time.perf_counter()
        attempts = await worker.run_until_idle()
        elapsed = time.perf_counter() - started
        await transport.close()
    return attempts, elapsed


def sent_count(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM delivery"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def issue_tokens(settings: Settings) -> dict[str, str]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker.begin() as session:
            issued = await add_sender(session, workspace_name="bench", email=SENDER)
    return {"X-Api-Access-Token": issued.access_token, "X-Api-Secret-Token": issued.secret_token}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench_mx")
    parser.add_argument("--emails", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit("missing smtp-sink: apt-get install -y postfix (only smtp-sink is used)")

    logs = Path(tempfile.mkdtemp(prefix="posthouse-bench-mx-"))
    processes = Processes(logs)
    dns: DnsServer | None = None
    try:
        relay_port, mx_port = free_port(), free_port()
        start_sinks(processes, relay_port, ["127.0.0.1"])
        start_sinks(processes, mx_port, [f"127.0.0.{n + 2}" for n in range(DOMAINS)])
        wait_until("relay sink", lambda: port_open(relay_port))
        dns = stub_dns(mx_port)
        url = reset_database(args.admin_url, args.database)
        upgrade(url)
        base = Settings(
            _env_file=None,
            database_url=url,
            require_verified_domains=False,
            rate_limit_per_ip=0,
            rate_limit_per_key=0,
            worker_poll_seconds=0.05,
        )
        modes = {
            "relay": base.model_copy(update={"delivery_url": f"smtp://127.0.0.1:{relay_port}"}),
            "mx (default caps)": base.model_copy(
                update={
                    "delivery_url": "mx:",
                    "dns_resolvers": [dns.address],
                    "mx_port": mx_port,
                }
            ),
            "mx (no caps)": base.model_copy(
                update={
                    "delivery_url": "mx:",
                    "dns_resolvers": [dns.address],
                    "mx_port": mx_port,
                    "mx_rate_per_destination": 0,
                    "mx_connections_per_destination": 64,
                }
            ),
        }
        tokens = asyncio.run(issue_tokens(base))
        print(
            f"cores: {os.cpu_count()}  emails per run: {args.emails}  domains: {DOMAINS}  "
            f"worker concurrency: {base.worker_concurrency}  relay connections: "
            f"{base.smtp_connections}  mx caps: {base.mx_connections_per_destination} conn, "
            f"{base.mx_rate_per_destination:.0f}/s per domain"
        )
        rates: dict[str, list[float]] = {name: [] for name in modes}
        for run in range(args.repeat):
            for name, settings in modes.items():
                clear_queue(url)
                asyncio.run(enqueue(settings, args.emails, tokens))
                attempts, elapsed = asyncio.run(drain(settings))
                total, sent = sent_count(url)
                if sent != total:
                    print(f"  warning: {name}: {total - sent} of {total} not sent")
                rate = sent / elapsed
                rates[name].append(rate)
                print(
                    f"  run {run + 1} {name:18} {sent:6d} sent in {elapsed:6.2f}s = "
                    f"{rate:7.0f}/s  (attempts {attempts}, load {load_average()})"
                )
        print()
        relay_best = max(rates["relay"])
        print(f"{'mode':20} {'best/s':>8} {'median/s':>9} {'best vs relay':>14}")
        for name, values in rates.items():
            print(
                f"{name:20} {max(values):8.0f} {statistics.median(values):9.0f} "
                f"{max(values) / relay_best:13.2f}x"
            )
    finally:
        if dns is not None:
            dns.stop()
        processes.stop_all()
        print(f"logs: {logs}")


if __name__ == "__main__":
    main()
