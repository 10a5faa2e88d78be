"""Benchmark of issue 3: accepted sends/s with every protection on versus off, same run.

"off": no quota, no rate limits, no idempotency key, an empty suppression list.
"on":  a monthly quota (counted per send under its row lock), per-IP and per-key rate
limits (high enough never to refuse: they are checked, not hit), a fresh
Idempotency-Key per request (claim, commit, store the response), 1,000 addresses on the
workspace's suppression list (looked up per send), and the suspension check.

Both run against ``posthouse api --workers 2`` on a scratch PostgreSQL database, driven
by wrk with the seed-000 request (one recipient, 5 KB HTML, a 20 KB attachment), in
alternating runs so that drift in the machine's load hits both alike. Prints each run,
best and median per mode, and the ratio on/off (the issue's bar: at most 15% slower).

    .venv/bin/python bench/protections.py [--repeat 3] [--duration 15]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.spine import (  # noqa: E402
    POSTHOUSE,
    SENDER,
    Figures,
    Processes,
    backend_cpu,
    backend_cpu_since,
    clear_messages,
    free_port,
    healthy,
    load_average,
    reset_database,
    seed_request,
    wait_until,
)

LUA = Path(__file__).with_name("protections.lua")
MODES = ("off", "on")


def wrk(
    port: int, body: Path, headers: Path, *, keys: bool, seconds: float, connections: int
) -> dict[str, float]:
    argv = [
        "wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "--latency",
        "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(body), str(headers),
        "key" if keys else "none",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROTECTIONS ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    summary = json.loads(line.removeprefix("PROTECTIONS "))
    return {
        "rate": summary["accepted"] / (summary["duration_us"] / 1e6),
        "refused": summary["refused"],
        "p50": summary["p50_us"] / 1000,
        "p99": summary["p99_us"] / 1000,
    }


def posthouse(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(POSTHOUSE), *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def suppress_many(url: str, workspace: str, count: int) -> None:
    """A realistic list to look recipients up in (the bench recipient is not on it)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO suppression (id, workspace_id, address, reason, created_at)"
            " SELECT gen_random_uuid(), w.id, 'gone' || n || '@example.com', 'hard_bounce', now()"
            " FROM workspace w, generate_series(1, %s) n WHERE w.name = %s",
            (count, workspace),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench_protections")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode")
    parser.add_argument("--duration", type=float, default=15, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument(
        "--on",
        default="quota,rate,key,suppression",
        help="protections in the 'on' mode (to see what each costs)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("missing wrk: apt-get install -y wrk")

    logs = Path(tempfile.mkdtemp(prefix="posthouse-bench-protections-"))
    processes = Processes(logs)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, processes, logs)
    finally:
        processes.stop_all()
        signal.signal(signal.SIGTERM, previous)
        print(f"logs: {logs}")


def run(args: argparse.Namespace, processes: Processes, logs: Path) -> None:
    print(f"cores: {os.cpu_count()}  load before: {load_average()}")
    database_url = reset_database(args.admin_url, args.database)
    base = {
        **os.environ,
        "POSTHOUSE_DATABASE_URL": database_url,
        "POSTHOUSE_DELIVERY_URL": f"maildir:{logs / 'maildir'}",
        "POSTHOUSE_REQUIRE_VERIFIED_DOMAINS": "false",
        "POSTHOUSE_ENVIRONMENT": "development",
    }
    enabled = set(args.on.split(","))
    rate = "1000000" if "rate" in enabled else "0"
    envs = {
        "off": {**base, "POSTHOUSE_RATE_LIMIT_PER_IP": "0", "POSTHOUSE_RATE_LIMIT_PER_KEY": "0"},
        "on": {**base, "POSTHOUSE_RATE_LIMIT_PER_IP": rate, "POSTHOUSE_RATE_LIMIT_PER_KEY": rate},
    }
    print(f"protections on: {', '.join(sorted(enabled))}")
    posthouse(base, "migrate")
    requests = {}
    for mode in MODES:
        issued = json.loads(
            posthouse(base, "sender", "add", SENDER, "--workspace", f"bench-{mode}", "--json")
        )
        directory = logs / mode
        directory.mkdir()
        requests[mode] = seed_request(directory, issued["accessToken"], issued["secretToken"])
    if "quota" in enabled:
        posthouse(base, "workspace", "update", "bench-on", "--monthly-quota", "1000000000")
    if "suppression" in enabled:
        suppress_many(database_url, "bench-on", 1000)

    rates = {mode: Figures(f"accepted sends, protections {mode}", "req/s") for mode in MODES}
    p99 = {mode: Figures(f"p99 latency, protections {mode}", "ms", False) for mode in MODES}
    # CPU per accepted send (api processes + PostgreSQL backends) varies less than the
    # throughput on a shared, noisy machine.
    cpu = {mode: Figures(f"cpu per send, protections {mode}", "ms", False) for mode in MODES}
    for number in range(args.repeat):
        for mode in MODES:
            clear_messages(database_url)
            port = free_port()
            processes.start(
                f"api-{mode}",
                [str(POSTHOUSE), "api", "--port", str(port), "--workers", str(args.api_workers)],
                envs[mode],
            )
            wait_until("the api", lambda port=port: healthy(port))
            body, headers = requests[mode]
            options = {"keys": mode == "on" and "key" in enabled, "connections": args.connections}
            wrk(port, body, headers, seconds=3, **options)  # warm up
            api_cpu = processes.cpu(f"api-{mode}")
            pg_cpu = backend_cpu(database_url, args.database)
            result = wrk(port, body, headers, seconds=args.duration, **options)
            api_cpu = processes.cpu(f"api-{mode}") - api_cpu
            pg_seconds = backend_cpu_since(database_url, args.database, pg_cpu)
            processes.stop(f"api-{mode}")
            sends = max(1.0, result["rate"] * args.duration)
            rates[mode].add(result["rate"])
            p99[mode].add(result["p99"])
            cpu[mode].add((api_cpu + pg_seconds) * 1000 / sends)
            print(
                f"run {number + 1} {mode:>3}: {result['rate']:7.1f} accepted/s"
                f"  p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms"
                f"  cpu/send {cpu[mode].values[-1]:5.2f} ms"
                f"  refused {result['refused']}  load {rates[mode].loads[-1]}"
            )

    print()
    print(f"{'measurement':36} {'best':>10} {'median':>10}  unit")
    for figures in (*rates.values(), *p99.values(), *cpu.values()):
        print(f"{figures.name:36} {figures.best():10.1f} {figures.median():10.1f}  {figures.unit}")
    best = rates["on"].best() / rates["off"].best()
    median = rates["on"].median() / rates["off"].median()
    print(f"{'ratio on/off (throughput)':36} {best:10.2f} {median:10.2f}")
    best = cpu["off"].best() / cpu["on"].best()
    median = cpu["off"].median() / cpu["on"].median()
    print(f"{'ratio off/on (cpu per send)':36} {best:10.2f} {median:10.2f}")
    print("target: ratios >= 0.85 (the protections cost at most 15%)")


if __name__ == "__main__":
    main()
