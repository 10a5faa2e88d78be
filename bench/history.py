"""Benchmark of the history's queries (issue 16) at 10,000 and at 1,000,000 stored emails.

Drops and recreates scratch PostgreSQL databases (``posthouse_bench16_<size>``), migrates
them, and bulk-loads emails with their events by
``INSERT ... SELECT generate_series`` (not through the API): one workspace, two email
setups, ten use cases, 50,000 distinct recipients, states 90% delivered, 4% bounced,
2% rejected, 1% complained, 3% still sent, about two events per email. At each size it
runs ``ANALYZE`` and times, through history.service on the app's own engine (asyncpg),
each query ``--samples`` times with random parameters, in ``--rounds`` rounds that
alternate between the sizes (one database per size), and prints p50 and p99:

    list by use case, list by use case + to_address, list by setup + state,
    page 10 of a walk (by use case), events by email_id, email detail

then the ratios p99(1M) / p99(10k), and the plan of each list's statement. The databases
are dropped at the end unless ``--keep``.

    .venv/bin/python bench/history.py [--sizes 10000,1000000] [--samples 300]
"""

import argparse
import asyncio
import hashlib
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from posthouse.db.engine import create_engine, create_sessionmaker  # noqa: E402
from posthouse.db.migrate import upgrade  # noqa: E402
from posthouse.history import service as history  # noqa: E402
from posthouse.history.paging import Tokens  # noqa: E402
from posthouse.history.repository import EmailQuery, HistoryRepository  # noqa: E402

WORKSPACE = uuid.UUID("00000000-0000-0000-0000-00000000a001")
SENDER = uuid.UUID("00000000-0000-0000-0000-00000000a002")
SETUPS = {
    uuid.UUID("00000000-0000-0000-0000-00000000b001"): "bench-a.example",
    uuid.UUID("00000000-0000-0000-0000-00000000b002"): "bench-b.example",
}
USE_CASES = [uuid.UUID(f"00000000-0000-0000-0000-0000000c{i:04x}") for i in range(10)]
RECIPIENTS = 50_000
# Seconds between two emails: 1,000,000 emails span about 12 days.
SPACING = 1.0

# Ids sortable by creation, as posthouse's ULIDs are: 12 hex digits of the sequence
# number, then 20 of a per-table hash.
_ID = "(lpad(to_hex(i), 12, '0') || substr(md5('{salt}' || i::text), 1, 20))::uuid"

LOAD_MESSAGES = f"""
INSERT INTO message (id, created_at, workspace_id, sender_id, api, from_email, "to", cc,
    bcc, reply_to, subject, subject_key, html, headers, tags, message_id_header,
    content_hash, track_opens, track_clicks, attachment_count, use_case_id, tier)
SELECT {_ID.format(salt="m")}, %(t0)s + i * interval '{SPACING} second', %(w)s, %(s)s,
    'envelope', 'no-reply@' || (CASE WHEN i %% 10 < 5 THEN 'bench-a' ELSE 'bench-b' END)
    || '.example', '[]', '[]', '[]', '[]', 'Receipt ' || i, md5(i::text),
    '<p>Receipt ' || i || '</p>', '{{}}', '[]', '<' || i || '@bench.example>',
    md5('c' || i::text), false, false, 0,
    ('00000000-0000-0000-0000-0000000c' || lpad(to_hex(i %% 10), 4, '0'))::uuid, 'good'
FROM generate_series(%(start)s, %(stop)s - 1) AS i
"""
# i % 100: 0-89 delivered, 90-93 bounced, 94-95 rejected, 96 complained, 97-99 sent.
STATE = """CASE WHEN i %% 100 < 90 THEN 'delivered' WHEN i %% 100 < 94 THEN 'bounced'
    WHEN i %% 100 < 96 THEN 'rejected' WHEN i %% 100 < 97 THEN 'complained' ELSE 'sent' END"""
LOAD_DELIVERIES = f"""
INSERT INTO delivery (id, created_at, message_id, workspace_id, recipient, kind, status,
    attempts, next_attempt_at, expires_at, tracking_token, updated_at, from_domain,
    use_case_id, state)
SELECT {_ID.format(salt="d")}, %(t0)s + i * interval '{SPACING} second',
    {_ID.format(salt="m")}, %(w)s, 'user' || (i::bigint * 7919 %% {RECIPIENTS}) || '@example.com',
    'to', 'sent', 1, %(t0)s, %(t0)s + interval '30 days', md5('t' || i::text),
    %(t0)s + i * interval '{SPACING} second',
    (CASE WHEN i %% 10 < 5 THEN 'bench-a' ELSE 'bench-b' END) || '.example',
    ('00000000-0000-0000-0000-0000000c' || lpad(to_hex(i %% 10), 4, '0'))::uuid, {STATE}
FROM generate_series(%(start)s, %(stop)s - 1) AS i
"""
# Per email: its outcome event (none while still sent), plus an Open for a third of the
# delivered ones and a Delivery before each Complaint.
LOAD_EVENTS = f"""
INSERT INTO event (id, workspace_id, message_id, delivery_id, type, occurred_at,
    received_at, data, dedupe_key)
SELECT (lpad(to_hex(i), 12, '0') || substr(md5(k || i::text), 1, 20))::uuid, %(w)s,
    {_ID.format(salt="m")}, {_ID.format(salt="d")}, k,
    %(t0)s + i * interval '{SPACING} second' + interval '2 second',
    %(t0)s + i * interval '{SPACING} second' + interval '3 second',
    (CASE WHEN k = 'Bounce' THEN
        '{{"bounce_type": "Permanent", "bounce_subtype": "NoEmail"}}' ELSE '{{}}' END)::json,
    k || ':' || i
FROM generate_series(%(start)s, %(stop)s - 1) AS i,
LATERAL (SELECT unnest(CASE
    WHEN i %% 100 < 90 AND i %% 3 = 0 THEN ARRAY['Delivery', 'Open']
    WHEN i %% 100 < 90 THEN ARRAY['Delivery']
    WHEN i %% 100 < 94 THEN ARRAY['Bounce']
    WHEN i %% 100 < 96 THEN ARRAY['Reject']
    WHEN i %% 100 < 97 THEN ARRAY['Delivery', 'Complaint']
    ELSE ARRAY[]::text[] END) AS k) AS kinds
"""


def reset(admin_url: str, name: str) -> str:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url}/{name}"


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_tenants(url: str) -> None:
    with psycopg.connect(url) as connection:
        connection.execute(
            "INSERT INTO workspace (id, created_at, name, max_bounce_rate, max_complaint_rate,"
            " rate_min_volume, rate_window_days, reputation_tier)"
            " VALUES (%s, now(), 'bench', 0.05, 0.001, 100, 30, 'good')",
            (WORKSPACE,),
        )
        connection.execute(
            "INSERT INTO sender (id, created_at, workspace_id, email, domain_name)"
            " VALUES (%s, now(), %s, 'no-reply@bench-a.example', 'bench-a.example')",
            (SENDER, WORKSPACE),
        )
        for setup_id, name in SETUPS.items():
            connection.execute(
                "INSERT INTO domain (id, created_at, workspace_id, name, return_path_domain,"
                " verified_at) VALUES (%s, now(), %s, %s, %s, now())",
                (setup_id, WORKSPACE, name, f"bounces.{name}"),
            )
        for i, use_case_id in enumerate(USE_CASES):
            setup = list(SETUPS)[0 if i < 5 else 1]
            connection.execute(
                "INSERT INTO use_case (id, created_at, workspace_id, domain_id, sender_id, name,"
                " type, from_email) VALUES (%s, now(), %s, %s, %s, %s, 'transactional', %s)",
                (use_case_id, WORKSPACE, setup, SENDER, f"use case {i}", "no-reply@x"),
            )


def load(url: str, start: int, stop: int, t0: Any) -> float:
    """Emails ``start`` to ``stop`` - 1 with their deliveries and events, in chunks."""
    began = time.perf_counter()
    chunk = 100_000
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET synchronous_commit = off")
        for low in range(start, stop, chunk):
            high = min(stop, low + chunk)
            values = {"t0": t0, "w": WORKSPACE, "s": SENDER, "start": low, "stop": high}
            for statement in (LOAD_MESSAGES, LOAD_DELIVERIES, LOAD_EVENTS):
                connection.execute(statement, values)
        connection.execute("VACUUM ANALYZE message")
        connection.execute("VACUUM ANALYZE delivery")
        connection.execute("VACUUM ANALYZE event")
    return time.perf_counter() - began


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Query = Callable[[AsyncSession, random.Random], Awaitable[Any]]


def build_queries(size: int, tokens: Tokens) -> dict[str, Query]:
    page = history.Page(50)

    def scope(rng: random.Random) -> history.Scope:
        return history.Scope(WORKSPACE, use_case_id=rng.choice(USE_CASES))

    def email_id(i: int) -> uuid.UUID:
        tail = hashlib.md5(f"d{i}".encode()).hexdigest()[:20]
        return uuid.UUID(f"{i:012x}{tail}")

    async def by_use_case(session: AsyncSession, rng: random.Random) -> Any:
        return await history.list_emails(
            session,
            scope=scope(rng),
            recipients=[],
            states=[],
            sent_after=None,
            sent_before=None,
            page=page,
            tokens=tokens,
        )

    async def by_use_case_recipient(session: AsyncSession, rng: random.Random) -> Any:
        return await history.list_emails(
            session,
            scope=scope(rng),
            recipients=[f"user{rng.randrange(RECIPIENTS)}@example.com"],
            states=[],
            sent_after=None,
            sent_before=None,
            page=page,
            tokens=tokens,
        )

    async def by_setup_state(session: AsyncSession, rng: random.Random) -> Any:
        return await history.list_emails(
            session,
            scope=history.Scope(WORKSPACE, setup_id=rng.choice(list(SETUPS))),
            recipients=[],
            states=[rng.choice(["bounced", "rejected", "complained"])],
            sent_after=None,
            sent_before=None,
            page=page,
            tokens=tokens,
        )

    async def events_by_email(session: AsyncSession, rng: random.Random) -> Any:
        i = rng.randrange(size)
        return await history.list_events(
            session,
            scope=history.Scope(WORKSPACE, use_case_id=USE_CASES[i % 10]),
            email_ids=[email_id(i)],
            types=[],
            after=None,
            before=None,
            page=page,
            tokens=tokens,
        )

    async def detail(session: AsyncSession, rng: random.Random) -> Any:
        return await history.get_email(
            session, workspace_id=WORKSPACE, email_id=email_id(rng.randrange(size))
        )

    return {
        "list by use case": by_use_case,
        "list by use case + to_address": by_use_case_recipient,
        "list by setup + state": by_setup_state,
        "events by email_id": events_by_email,
        "email detail": detail,
    }


async def page_ten(
    maker: async_sessionmaker[AsyncSession], tokens: Tokens, rng: random.Random
) -> float:
    """Walk nine pages of a use case, then time the tenth."""
    scope = history.Scope(WORKSPACE, use_case_id=rng.choice(USE_CASES))
    token = None
    for _ in range(9):
        async with maker() as session:
            result = await history.list_emails(
                session,
                scope=scope,
                recipients=[],
                states=[],
                sent_after=None,
                sent_before=None,
                page=history.Page(50, token),
                tokens=tokens,
            )
        token = result.token
    async with maker() as session:
        began = time.perf_counter()
        await history.list_emails(
            session,
            scope=scope,
            recipients=[],
            states=[],
            sent_after=None,
            sent_before=None,
            page=history.Page(50, token),
            tokens=tokens,
        )
        return time.perf_counter() - began


Timings = dict[str, list[float]]


async def measure(url: str, size: int, samples: int, rng: random.Random, plans: bool) -> Timings:
    """``samples`` timings (seconds) of each query against one database."""
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    tokens = Tokens("bench")
    timings: Timings = {}
    try:
        for name, query in build_queries(size, tokens).items():
            timings[name] = []
            for n in range(samples + 10):
                async with maker() as session:
                    began = time.perf_counter()
                    await query(session, rng)
                    elapsed = time.perf_counter() - began
                if n >= 10:  # warm-up: pool, statement caches
                    timings[name].append(elapsed)
        timings["page 10 of a walk"] = [
            await page_ten(maker, tokens, rng) for _ in range(max(10, samples // 5))
        ]
        if plans:
            await explain(maker)
    finally:
        await engine.dispose()
    return timings


async def explain(maker: async_sessionmaker[AsyncSession]) -> None:
    """The plan of each list statement, compiled as the repository builds it."""
    cases = {
        "use case": EmailQuery(WORKSPACE, use_case_id=USE_CASES[3]),
        "use case + to_address": EmailQuery(
            WORKSPACE, use_case_id=USE_CASES[3], recipients=("user42@example.com",)
        ),
        "setup + state": EmailQuery(WORKSPACE, from_domain="bench-a.example", states=("bounced",)),
    }
    async with maker() as session:
        repository = HistoryRepository(session)
        for name, query in cases.items():
            statement = repository.email_page(query, before=None, limit=51)
            compiled = statement.compile(
                dialect=session.bind.dialect, compile_kwargs={"literal_binds": True}
            )
            rows = await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))
            plan = [row[0] for row in rows]
            used = [line.strip() for line in plan if "Scan" in line or "Sort" in line]
            timing = [line.strip() for line in plan if line.startswith("Execution Time")]
            print(f"    plan, {name}: {'; '.join(used)} ({' '.join(timing)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench16", help="prefix of the names")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--samples", type=int, default=300, help="per query, size and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = {size: f"{args.database}_{size}" for size in sizes}
    try:
        urls = {}
        for size in sizes:
            urls[size] = url = reset(args.admin_url, names[size])
            upgrade(url)
            seed_tenants(url)
            with psycopg.connect(url) as connection:
                row = connection.execute("SELECT now() - interval '30 days'").fetchone()
            assert row is not None
            print(f"loaded {size:,} emails in {load(url, 0, size, row[0]):.0f} s")
        timings: dict[int, Timings] = {size: {} for size in sizes}
        for number in range(args.rounds):
            # Sizes in alternating order, so the machine's load changes favour neither.
            for size in sizes if number % 2 == 0 else sizes[::-1]:
                rng = random.Random(size * 100 + number)
                measured = asyncio.run(measure(urls[size], size, args.samples, rng, number == 0))
                for name, values in measured.items():
                    timings[size].setdefault(name, []).extend(values)
            print(f"round {number + 1} done, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for size in sizes:
            print(f"\n{size:,} emails ({args.rounds} rounds, ms):")
            for name, values in timings[size].items():
                print(
                    f"  {name:<32} p50 {percentile(values, 0.5) * 1000:7.2f}"
                    f"   p99 {percentile(values, 0.99) * 1000:7.2f}   (n={len(values)})"
                )
        if len(sizes) > 1:
            small, large = timings[sizes[0]], timings[sizes[-1]]
            print(f"\np99 at {sizes[-1]:,} / p99 at {sizes[0]:,} (target <= 2.0, p99 < 50 ms):")
            for name in small:
                ratio = percentile(large[name], 0.99) / percentile(small[name], 0.99)
                print(f"  {name:<32} {ratio:5.2f}")
    finally:
        if not args.keep:
            for name in names.values():
                drop(args.admin_url, name)


if __name__ == "__main__":
    main()
