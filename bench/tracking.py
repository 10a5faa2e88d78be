"""Benchmark of issue 18: tracking hits against GET /healthz, and delivery with click
tracking against tracking off.

(h) tracking-hit throughput: wrk, 32 connections, GET of open-pixel paths, of click
    paths, and of /healthz (one statement, no write) in alternating turns against the
    same ``posthouse api --workers 2``; a pixel or click verifies its token, reads the
    delivery (and the recorded link) and stores an event. Prints each turn and the
    ratios pixel/healthz and click/healthz (the issue's target: >= 0.7).
(e) end to end: ``posthouse worker`` running, wrk sends ``--emails`` emails of 5 KB HTML
    with 20 links (no attachment), with ``trackClicks: "html"`` or ``"none"`` in
    alternating turns; the clock runs until every email was delivered to smtp-sink.
    Prints emails/s per turn and the ratio on/off (the issue's target: >= 0.8).

Starts and stops everything itself (a scratch PostgreSQL database, smtp-sink, the api
and the worker), like bench/spine.py, whose helpers it uses.

    .venv/bin/python bench/tracking.py [--repeat 3] [--duration 10] [--emails 2000]
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.spine import (  # noqa: E402
    POSTHOUSE,
    SENDER,
    Processes,
    Sink,
    check_tools,
    clear_messages,
    delivery_counts,
    free_port,
    healthy,
    load_average,
    reset_database,
    run_wrk,
    wait_until,
)
from posthouse.tracking.tokens import TokenKind, TokenSigner  # noqa: E402

PATHS_LUA = Path(__file__).with_name("paths.lua")
LINKS = 20


def linked_html() -> str:
    """About 5 KB of HTML with 20 distinct links."""
    rows = "".join(
        f'<tr><td><a href="https://shop.example/items/{i}?utm_source=mail&amp;n={i}">'
        f"Item {i}</a></td><td>Widget model {i:03d}, blue, with a longer description "
        f"of what it does and why you ordered it</td><td>{i * 3}.90 EUR</td></tr>"
        for i in range(LINKS)
    )
    html = f"<html><body><h1>Thanks for your order</h1><table>{rows}</table>"
    padding = "<p>" + "We hope you enjoy your purchase. " * 40 + "</p>"
    return (html + padding)[: 5 * 1024 - len("</body></html>")] + "</body></html>"


def send_request(directory: Path, access: str, secret: str, clicks: str) -> tuple[Path, Path]:
    """The native send, as multipart with the JSON payload only; ``@@N@@`` in the
    subject is filled in per request by bench/seed000.lua."""
    payload = json.dumps(
        {
            "from": SENDER,
            "to": ["customer@sink.posthouse.example"],
            "subject": "Your order @@N@@",
            "body": linked_html(),
            "trackClicks": clicks,
            "trackOpens": clicks != "none",
        }
    )
    boundary = "----posthouse-bench-" + secrets.token_hex(8)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="payload"\r\n'
        f"Content-Type: application/json\r\n\r\n{payload}\r\n--{boundary}--\r\n"
    ).encode()
    body_file = directory / f"send-{clicks}.body"
    headers_file = directory / f"send-{clicks}.headers"
    body_file.write_bytes(body)
    headers_file.write_text(
        f"Content-Type: multipart/form-data; boundary={boundary}\n"
        f"X-Api-Access-Token: {access}\nX-Api-Secret-Token: {secret}\n"
    )
    return body_file, headers_file


def get_paths(port: int, paths: Path, *, seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s and the number of requests answered."""
    argv = [
        "wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
        "--latency", "-s", str(PATHS_LUA), f"http://127.0.0.1:{port}", "--", str(paths),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PATHS ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    summary = json.loads(line.removeprefix("PATHS "))
    if summary["failed"] or summary["errors"]:
        raise RuntimeError(f"failed requests: {summary}")
    return float(summary["ok"] / (summary["duration_us"] / 1e6)), int(summary["ok"])


def end_to_end(
    processes: Processes,
    env: dict[str, str],
    database_url: str,
    port: int,
    request: tuple[Path, Path],
    emails: int,
) -> float:
    clear_messages(database_url)
    log = processes.start("worker", [str(POSTHOUSE), "worker"], env)
    wait_until("the worker", lambda: "started" in log.read_text())
    started = time.perf_counter()
    body, headers = request
    run_wrk(
        port=port, body=body, headers=headers, connections=32, threads=2,
        duration=emails, limit=emails,
    )  # fmt: skip
    total = -1
    while total != (total := delivery_counts(database_url)[0]):
        time.sleep(0.3)
    wait_until(
        "every email delivered", lambda: delivery_counts(database_url)[1] >= total, timeout=900
    )
    elapsed = time.perf_counter() - started
    processes.stop("worker")
    return total / elapsed


def tracking_paths(database_url: str, secret: str, directory: Path) -> tuple[Path, Path]:
    """Pixel and click paths for the deliveries of the last tracked run."""
    signer = TokenSigner((secret,))
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT DISTINCT delivery_id FROM tracked_link LIMIT 2000"
        ).fetchall()
    deliveries = [uuid.UUID(str(row[0])) for row in rows]
    if not deliveries:
        raise RuntimeError("no tracked deliveries to hit")
    pixels, clicks = directory / "pixels.txt", directory / "clicks.txt"
    pixels.write_text("".join(f"/t/o/{signer.sign(TokenKind.OPEN, d)}\n" for d in deliveries))
    clicks.write_text(
        "".join(
            f"/t/c/{signer.sign(TokenKind.CLICK, d, i % LINKS)}\n" for i, d in enumerate(deliveries)
        )
    )
    return pixels, clicks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench_issue18")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per (h) turn")
    parser.add_argument("--emails", type=int, default=2000, help="emails per (e) turn")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--only", default="eh", help="which of e and h to run")
    args = parser.parse_args()
    check_tools()
    logs = Path(tempfile.mkdtemp(prefix="posthouse-bench-tracking-"))
    processes = Processes(logs)
    try:
        run(args, processes, logs)
    finally:
        processes.stop_all()
        print(f"logs: {logs}")


def run(args: argparse.Namespace, processes: Processes, logs: Path) -> None:
    print(f"cores: {os.cpu_count()}  load before: {load_average()}")
    sink = Sink(processes)
    database_url = reset_database(args.admin_url, args.database)
    secret = secrets.token_hex(16)
    env = {
        **os.environ,
        "POSTHOUSE_DATABASE_URL": database_url,
        "POSTHOUSE_DELIVERY_URL": f"smtp://127.0.0.1:{sink.port}",
        "POSTHOUSE_RATE_LIMIT_PER_IP": "0",
        "POSTHOUSE_RATE_LIMIT_PER_KEY": "0",
        "POSTHOUSE_REQUIRE_VERIFIED_DOMAINS": "false",
        "POSTHOUSE_ENVIRONMENT": "development",
        "POSTHOUSE_SECRET_KEY": secret,
        "POSTHOUSE_PUBLIC_URL": "https://t.bench.posthouse.example",
    }
    subprocess.run([str(POSTHOUSE), "migrate"], env=env, check=True, capture_output=True)
    issued = json.loads(
        subprocess.run(
            [str(POSTHOUSE), "sender", "add", SENDER, "--workspace", "bench", "--json"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    requests = {
        mode: send_request(logs, issued["accessToken"], issued["secretToken"], mode)
        for mode in ("none", "html")
    }
    port = free_port()
    processes.start(
        "api", [str(POSTHOUSE), "api", "--port", str(port), "--workers", str(args.api_workers)], env
    )
    wait_until("the api", lambda: healthy(port))
    # Warm up: imports, pools, caches.
    end_to_end(processes, env, database_url, port, requests["html"], min(500, args.emails))

    rates: dict[str, list[float]] = {"none": [], "html": []}
    for turn in range(args.repeat if "e" in args.only else 0):
        for mode in ("none", "html"):
            rate = end_to_end(processes, env, database_url, port, requests[mode], args.emails)
            rates[mode].append(rate)
            print(
                f"(e) turn {turn + 1} clicks={mode:<4}: {rate:7.1f} emails/s  load {load_average()}"
            )

    pixels, clicks = tracking_paths(database_url, secret, logs)
    healthz = logs / "healthz.txt"
    healthz.write_text("/healthz\n")
    hits: dict[str, list[float]] = {"healthz": [], "pixel": [], "click": []}
    # CPU of the api processes per request: steadier than req/s on a shared machine.
    costs: dict[str, list[float]] = {"healthz": [], "pixel": [], "click": []}
    files = {"healthz": healthz, "pixel": pixels, "click": clicks}
    get_paths(port, pixels, seconds=2, connections=32)
    for turn in range(args.repeat if "h" in args.only else 0):
        for name, paths in files.items():
            cpu = processes.cpu("api")
            rate, answered = get_paths(port, paths, seconds=args.duration, connections=32)
            cost = (processes.cpu("api") - cpu) * 1000 / max(1, answered)
            hits[name].append(rate)
            costs[name].append(cost)
            print(
                f"(h) turn {turn + 1} {name:<7}: {rate:7.1f} req/s  api cpu {cost:.2f} ms/request"
                f"  load {load_average()}"
            )

    print()
    print(f"{'figure':<34}{'median':>10}{'best':>10}")
    for name, values in hits.items():
        if values:
            print(f"(h) {name + ' req/s':<30}{_med(values):>10.1f}{max(values):>10.1f}")
    for mode, values in rates.items():
        if values:
            print(
                f"(e) {'clicks=' + mode + ' emails/s':<30}{_med(values):>10.1f}{max(values):>10.1f}"
            )
    if "h" in args.only:
        _print_hit_ratios(hits)
        for name in ("pixel", "click"):
            ratio = _med(costs["healthz"]) / _med(costs[name])
            print(
                f"api cpu per request: {name} {_med(costs[name]):.2f} ms, healthz"
                f" {_med(costs['healthz']):.2f} ms: {name} throughput bound {ratio:.2f} x healthz"
            )
    if "e" in args.only:
        _print_delivery_ratio(rates)


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _print_hit_ratios(hits: dict[str, list[float]]) -> None:
    med = _med
    pairs = list(zip(hits["healthz"], hits["pixel"], hits["click"], strict=True))
    print(
        f"ratio pixel/healthz: median {med([p / h for h, p, _ in pairs]):.2f}"
        f"  (per turn: {', '.join(f'{p / h:.2f}' for h, p, _ in pairs)}; target >= 0.7)"
    )
    print(
        f"ratio click/healthz: median {med([c / h for h, _, c in pairs]):.2f}"
        f"  (per turn: {', '.join(f'{c / h:.2f}' for h, _, c in pairs)}; target >= 0.7)"
    )


def _print_delivery_ratio(rates: dict[str, list[float]]) -> None:
    med = _med
    turns = list(zip(rates["none"], rates["html"], strict=True))
    print(
        f"ratio tracked/untracked delivery: median {med([t / n for n, t in turns]):.2f}"
        f"  (per turn: {', '.join(f'{t / n:.2f}' for n, t in turns)}; target >= 0.8)"
    )


if __name__ == "__main__":
    main()
