"""Benchmark of the spine (issue 2): accepted sends/s, end-to-end delivery, SMTP ceiling.

Starts and stops everything itself: Postfix's smtp-sink on a loopback port, a scratch
PostgreSQL database, ``posthouse api --workers 2`` and ``posthouse worker``; drives the
API with wrk (32 connections, the seed-000 request) and prints a short table.

    .venv/bin/python bench/spine.py [--repeat 3] [--emails 10000]

See bench/README.md for what each figure means and how to install the tools.
"""

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

# Run as a script, bench/ comes first on sys.path, where bench/dkim.py would shadow the
# dkim package: import from the repository root instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
from bench import bare_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POSTHOUSE = Path(sys.executable).with_name("posthouse")
LUA = Path(__file__).with_name("seed000.lua")
SENDER = "no-reply@bench.posthouse.example"
RECIPIENT = "customer@sink.posthouse.example"
# (r) on the machine where issue 2's targets and reference points were measured.
REFERENCE_MACHINE_RPS = 1100


@dataclass
class Figures:
    """Repeated measurements of one quantity; reports best and median."""

    name: str
    unit: str
    higher_is_better: bool = True
    values: list[float] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)
        self.loads.append(load_average())

    def best(self) -> float:
        return max(self.values) if self.higher_is_better else min(self.values)

    def median(self) -> float:
        return statistics.median(self.values)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def calibration_ms() -> float:
    """How fast one core is right now, in a figure comparable across machines."""
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        sum(range(10**7))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_tools() -> None:
    missing = []
    if not shutil.which("smtp-sink") and not Path("/usr/sbin/smtp-sink").exists():
        missing.append(
            "smtp-sink (Postfix): DEBIAN_FRONTEND=noninteractive apt-get install -y postfix"
            " (only the smtp-sink binary is used; no Postfix daemon needs to run)"
        )
    if not shutil.which("wrk"):
        missing.append("wrk: apt-get install -y wrk")
    if not POSTHOUSE.exists():
        missing.append(f"the posthouse console script next to {sys.executable}: make install")
    if missing:
        sys.exit("missing tools:\n  " + "\n  ".join(missing))


# -- processes -------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts, each in its own process group, so that a
    uvicorn supervisor and its workers stop together."""

    def __init__(self, logs: Path, *, profile: bool = False) -> None:
        self.logs = logs
        self.profile = profile
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, int] = {}

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        *,
        profiled: bool = False,
    ) -> Path:
        number = self.started[name] = self.started.get(name, 0) + 1
        log = self.logs / f"{name}-{number}.log"
        if profiled and self.profile:
            # Collapsed stacks of every process (uvicorn forks its workers).
            output = self.logs / f"{name}-{number}.profile.txt"
            spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses"]
            argv = [*spy, "--format", "raw", "--rate", "200", "-o", str(output), "--", *argv]
        with log.open("ab") as out:
            self.running[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return log

    def stop(self, name: str, timeout: float = 20.0) -> None:
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        # SIGINT: uvicorn and the worker shut down gracefully, py-spy writes its profile.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def cpu(self, name: str) -> float:
        process = self.running.get(name)
        return cpu_seconds(group=process.pid) if process is not None else 0.0

    def alive(self, name: str) -> bool:
        process = self.running.get(name)
        return process is not None and process.poll() is None

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def _stat_fields(pid: str) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself contain spaces and parentheses.
    return stat.rpartition(")")[2].split()


def cpu_seconds(*, group: int | None = None, pids: set[int] | None = None) -> float:
    """User+system CPU time of a process group's live members, or of some processes."""
    ticks = 0
    candidates = [str(p) for p in pids] if pids is not None else os.listdir("/proc")
    for pid in candidates:
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        # fields[2] is the process group; [11] and [12] are utime and stime.
        if fields is None or (group is not None and int(fields[2]) != group):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine, summed over cores (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, (idle + iowait) / tick


def wait_until(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Sink:
    """Postfix's smtp-sink; ``-c`` prints running counters (``mesg=N``) on stdout."""

    def __init__(self, processes: Processes) -> None:
        self.port = free_port()
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.log = processes.start(
            "smtp-sink", [binary, *user, "-c", f"127.0.0.1:{self.port}", "1024"]
        )
        wait_until("smtp-sink", lambda: port_open(self.port))

    def messages(self) -> int:
        counters = re.findall(rb"mesg=(\d+)", self.log.read_bytes()[-2000:])
        return int(counters[-1]) if counters else 0


# -- database --------------------------------------------------------------------------


def reset_database(admin_url: str, name: str) -> str:
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url}/{name}"


def clear_messages(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        # Statistics first, while the tables hold the last run's rows: they survive the
        # TRUNCATE, so the planner sees what a running server's autovacuum would have
        # seen. Statistics of empty tables (or none) make it scan the whole attachment
        # table for the few rows a claim fetches by message id, which costs more with
        # every email of the run.
        connection.execute("ANALYZE")
        # Requests wrk abandoned may still be committing: a deadlock then is harmless.
        for attempt in range(10):
            try:
                connection.execute(
                    "TRUNCATE event, delivery_attempt, delivery, attachment, message CASCADE"
                )
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 9:
                    raise
                time.sleep(0.5)


def backend_cpu(url: str, database: str) -> dict[int, float]:
    """CPU time of each PostgreSQL backend serving the benchmark database."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return {int(pid): cpu_seconds(pids={int(pid)}) for (pid,) in rows}


def backend_cpu_since(url: str, database: str, before: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in backend_cpu(url, database).items())


def delivery_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'sent') FROM delivery"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# -- the seed-000 request ----------------------------------------------------------------


def seed_html() -> str:
    """5 KB of order-confirmation HTML."""
    rows = "".join(
        f"<tr><td>Item {i}</td><td>Widget model {i:03d}, blue</td><td>{i * 3}.90 EUR</td></tr>"
        for i in range(100)
    )
    html = f"<html><body><h1>Thanks for your order</h1><table>{rows}"
    return html[: 5 * 1024 - len("</table></body></html>")] + "</table></body></html>"


def seed_attachment() -> bytes:
    """A 20 KB PDF-like file (binary, so base64 encoding costs what it costs)."""
    return (b"%PDF-1.4\n" + bytes(range(256)) * 80)[: 20 * 1024]


def seed_request(directory: Path, access: str, secret: str) -> tuple[Path, Path]:
    """Seed 000's send: one recipient, ~5 KB of HTML, one 20 KB PDF attachment. The
    subject carries a counter (``@@N@@``, filled in by the Lua script) so that no two
    requests are the same email."""
    payload = json.dumps(
        {"from": SENDER, "to": [RECIPIENT], "subject": "Your order @@N@@", "body": seed_html()}
    )
    pdf = seed_attachment()
    boundary = "----posthouse-bench-" + secrets.token_hex(8)
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="payload"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            payload.encode(),
            f"\r\n--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="attachments"; filename="invoice.pdf"\r\n',
            b"Content-Type: application/pdf\r\n\r\n",
            pdf,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    body_file, headers_file = directory / "seed000.body", directory / "seed000.headers"
    body_file.write_bytes(body)
    headers_file.write_text(
        f"Content-Type: multipart/form-data; boundary={boundary}\n"
        f"X-Api-Access-Token: {access}\nX-Api-Secret-Token: {secret}\n"
    )
    return body_file, headers_file


@dataclass
class WrkResult:
    requests_per_second: float
    accepted: int
    refused: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float


def run_wrk(
    *,
    port: int,
    body: Path,
    headers: Path,
    connections: int,
    threads: int,
    duration: float,
    limit: int = 0,
) -> WrkResult:
    per_thread = math.ceil(limit / threads) if limit else 0
    marker = body.with_name(f"wrk-done-{secrets.token_hex(4)}-")
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        str(body),
        str(headers),
        str(per_thread),
        str(marker),
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as wrk:
        if limit:
            # wrk's main thread sleeps out -d even when every thread stopped: interrupt it.
            markers = [marker.with_name(marker.name + str(i + 1)) for i in range(threads)]
            while wrk.poll() is None and not all(m.exists() for m in markers):
                time.sleep(0.02)
            wrk.send_signal(signal.SIGINT)
        stdout, stderr = wrk.communicate()
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{stdout}\n{stderr}")
    line = next((x for x in stdout.splitlines() if x.startswith("SEED000 ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout}\n{stderr}")
    summary = json.loads(line.removeprefix("SEED000 "))
    if stderr.strip():
        print(stderr.strip(), file=sys.stderr)
    seconds = summary["duration_us"] / 1e6
    total = summary["accepted"] + summary["refused"]
    return WrkResult(
        requests_per_second=summary["accepted"] / seconds,
        accepted=summary["accepted"],
        refused=summary["refused"],
        errors=summary["errors"] + (total - summary["accepted"] - summary["refused"]),
        seconds=seconds,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )


# -- (c): the ceiling ---------------------------------------------------------------------


def ceiling_message() -> bytes:
    """The bytes posthouse builds for the seed-000 request, so (b) and (c) carry the
    same payload."""
    from posthouse.mime.builder import MimeAttachment, MimeContent, build_message

    return build_message(
        MimeContent(
            from_email=SENDER,
            from_name=None,
            to=[(None, RECIPIENT)],
            cc=[],
            reply_to=[],
            subject="Your order 1-1",
            html=seed_html(),
            text=None,
            message_id=f"<{secrets.token_hex(12)}@bench.posthouse.example>",
            date=datetime.now(UTC),
            attachments=(MimeAttachment("invoice.pdf", "application/pdf", seed_attachment()),),
        )
    )


def smtp_ceiling(port: int, count: int) -> float:
    """A plain aiosmtplib loop over one reused connection (with uvloop, as the worker
    runs), in messages/s."""
    import aiosmtplib

    message = ceiling_message()

    async def main() -> float:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        started = time.perf_counter()
        for _ in range(count):
            await client.sendmail(SENDER, [RECIPIENT], message)
        elapsed = time.perf_counter() - started
        await client.quit()
        return count / elapsed

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


# -- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--duration", type=float, default=15, help="seconds of (a) per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--emails", type=int, default=10_000, help="emails in (b) and (c)")
    parser.add_argument("--only", default="rabc", help="which of r, a, b, c to run")
    parser.add_argument(
        "--profile", action="store_true", help="run api and worker under py-spy (collapsed stacks)"
    )
    args = parser.parse_args()
    check_tools()

    logs = Path(tempfile.mkdtemp(prefix="posthouse-bench-"))
    processes = Processes(logs, profile=args.profile)
    stop_signal = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, processes, logs)
    finally:
        processes.stop_all()
        signal.signal(signal.SIGTERM, stop_signal)
        print(f"logs: {logs}")


def run(args: argparse.Namespace, processes: Processes, logs: Path) -> None:
    print(
        f"cores: {os.cpu_count()}  load before: {load_average()}"
        f"  calibration: {calibration_ms():.0f} ms for sum(range(10**7))"
        " (about 100 ms on an idle modern core)"
    )
    sink = Sink(processes)
    database_url = reset_database(args.admin_url, args.database)
    env = {
        **os.environ,
        "POSTHOUSE_DATABASE_URL": database_url,
        "POSTHOUSE_DELIVERY_URL": f"smtp://127.0.0.1:{sink.port}",
        # The benchmark measures the pipeline, not the per-client protections.
        "POSTHOUSE_RATE_LIMIT_PER_IP": "0",
        "POSTHOUSE_RATE_LIMIT_PER_KEY": "0",
        "POSTHOUSE_REQUIRE_VERIFIED_DOMAINS": "false",
        "POSTHOUSE_ENVIRONMENT": "development",
    }
    subprocess.run([str(POSTHOUSE), "migrate"], env=env, check=True, capture_output=True)
    issued = json.loads(
        subprocess.run(
            [str(POSTHOUSE), "sender", "add", SENDER, "--workspace", "bench", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    body, headers = seed_request(logs, issued["accessToken"], issued["secretToken"])

    reference = Figures("(r) bare FastAPI + 1 insert", "req/s")
    reference_p99 = Figures("(r) p99 latency", "ms", higher_is_better=False)
    reference_cost = Figures("(r) cpu per request", "ms", higher_is_better=False)
    accepted = Figures("(a) accepted sends", "req/s")
    p50 = Figures("(a) p50 latency", "ms", higher_is_better=False)
    p99 = Figures("(a) p99 latency", "ms", higher_is_better=False)
    api_cost = Figures("(a) api cpu per send", "ms", higher_is_better=False)
    pg_cost = Figures("(a) postgres cpu per send", "ms", higher_is_better=False)
    end_to_end = Figures("(b) end to end", "emails/s")
    worker_cost = Figures("(b) worker cpu per email", "ms", higher_is_better=False)
    ceiling = Figures("(c) aiosmtplib ceiling", "msg/s")
    wrk: dict[str, Any] = {"body": body, "headers": headers, "connections": args.connections}

    if "r" in args.only:
        bare_port = free_port()
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(bare_app.TABLE)
        processes.start(
            "bare",
            [
                sys.executable, "-m", "uvicorn", "bench.bare_app:app",
                "--port", str(bare_port), "--workers", str(args.api_workers),
                "--log-level", "warning", "--no-access-log",
            ],
            {**env, "BARE_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        wait_until("the reference app", lambda: port_open(bare_port))
        bare = {**wrk, "port": bare_port}
        run_wrk(**bare, threads=args.threads, duration=3)
        for number in range(args.repeat):
            cpu = processes.cpu("bare")
            result = run_wrk(**bare, threads=args.threads, duration=args.duration)
            reference.add(result.requests_per_second)
            reference_p99.add(result.p99_ms)
            reference_cost.add((processes.cpu("bare") - cpu) * 1000 / max(1, result.accepted))
            print(
                f"(r) run {number + 1}: {result.requests_per_second:7.1f} req/s"
                f"  p99 {result.p99_ms:6.1f} ms  cpu/request {reference_cost.values[-1]:.2f} ms"
                f"  load {reference.loads[-1]}"
            )
        processes.stop("bare")

    if "a" in args.only or "b" in args.only:
        api_port = free_port()
        processes.start(
            "api",
            [str(POSTHOUSE), "api", "--port", str(api_port), "--workers", str(args.api_workers)],
            env,
            profiled=True,
        )
        wait_until("the api", lambda: healthy(api_port))
        wrk["port"] = api_port
        # Warm up: imports, connection pools, PostgreSQL's caches, and rows for the
        # planner's statistics (clear_messages).
        run_wrk(**wrk, threads=args.threads, duration=3)

    if "a" in args.only:
        for number in range(args.repeat):
            clear_messages(database_url)
            api_cpu, pg_cpu = processes.cpu("api"), backend_cpu(database_url, args.database)
            result = run_wrk(**wrk, threads=args.threads, duration=args.duration)
            api_cpu = processes.cpu("api") - api_cpu
            pg_ms = backend_cpu_since(database_url, args.database, pg_cpu) * 1000
            accepted.add(result.requests_per_second)
            p50.add(result.p50_ms)
            p99.add(result.p99_ms)
            api_ms = api_cpu * 1000 / max(1, result.accepted)
            api_cost.add(api_ms)
            pg_cost.add(pg_ms / max(1, result.accepted))
            print(
                f"(a) run {number + 1}: {result.requests_per_second:7.1f} accepted/s"
                f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms"
                f"  refused {result.refused}  errors {result.errors}"
                f"  cpu/send: api {api_ms:.2f} ms, postgres {pg_cost.values[-1]:.2f} ms"
                f"  load {accepted.loads[-1]}"
            )

    if "b" in args.only:
        for number in range(args.repeat):
            clear_messages(database_url)
            log = processes.start("worker", [str(POSTHOUSE), "worker"], env, profiled=True)
            # Startup (imports, connecting) is not part of the per-email cost.
            wait_until("the worker", lambda log=log: "started" in log.read_text())
            worker_cpu, api_cpu = processes.cpu("worker"), processes.cpu("api")
            pg_cpu = backend_cpu(database_url, args.database)
            busy, idle = machine_cpu()
            before = sink.messages()
            started = time.perf_counter()
            result = run_wrk(**wrk, threads=args.threads, duration=args.emails, limit=args.emails)
            # Requests wrk abandoned when it stopped may still commit: wait for the count
            # to settle (the clock keeps running; the worker keeps delivering meanwhile).
            total = -1
            while total != (total := delivery_counts(database_url)[0]):
                time.sleep(0.3)

            def delivered(total: int = total, before: int = before, log: Path = log) -> bool:
                if not processes.alive("worker"):
                    raise RuntimeError(f"the worker died; see {log}")
                # smtp-sink writes its counters through a buffer that is not always flushed
                # while sessions stay open; the worker records "sent" only after the sink's
                # 250, so either figure proves arrival, and the sink's is checked below.
                return (
                    sink.messages() - before >= total or delivery_counts(database_url)[1] >= total
                )

            wait_until("every email to reach the sink", delivered, timeout=900)
            elapsed = time.perf_counter() - started
            worker_cost.add((processes.cpu("worker") - worker_cpu) * 1000 / max(1, total))
            api_ms = (processes.cpu("api") - api_cpu) * 1000 / max(1, total)
            pg_ms = backend_cpu_since(database_url, args.database, pg_cpu) * 1000 / max(1, total)
            busy_after, idle_after = machine_cpu()
            machine_ms = (busy_after - busy) * 1000 / max(1, total)
            idle_share = (idle_after - idle) / max(1e-9, busy_after - busy + idle_after - idle)
            # The worker's QUIT ends the sink's sessions, which flushes its counters.
            processes.stop("worker")
            with suppress(RuntimeError):
                wait_until(
                    "the sink's counters",
                    lambda total=total, before=before: sink.messages() - before >= total,
                    timeout=10,
                )
            _, sent = delivery_counts(database_url)
            end_to_end.add(total / elapsed)
            print(
                f"(b) run {number + 1}: {total} accepted in {result.seconds:.1f} s"
                f" ({result.requests_per_second:.0f}/s), all at the sink after {elapsed:.1f} s:"
                f" {total / elapsed:7.1f} emails/s  (sink {sink.messages() - before},"
                f" recorded sent {sent})\n    cpu/email: worker {worker_cost.values[-1]:.2f} ms,"
                f" api {api_ms:.2f} ms, postgres {pg_ms:.2f} ms, whole machine {machine_ms:.2f} ms"
                f" ({idle_share:.0%} idle)"
                f"  load {end_to_end.loads[-1]}"
            )
        processes.stop("api")

    if "c" in args.only:
        for number in range(args.repeat):
            ceiling.add(smtp_ceiling(sink.port, args.emails))
            print(
                f"(c) run {number + 1}: {ceiling.values[-1]:7.1f} msg/s  load {ceiling.loads[-1]}"
            )

    print()
    print(f"{'measurement':28} {'best':>10} {'median':>10}  unit")
    for figures in (
        reference,
        reference_p99,
        reference_cost,
        accepted,
        p50,
        p99,
        api_cost,
        pg_cost,
        end_to_end,
        worker_cost,
        ceiling,
    ):
        if figures.values:
            print(
                f"{figures.name:28} {figures.best():10.1f} {figures.median():10.1f}  {figures.unit}"
            )
    if accepted.values and reference.values:
        print(
            f"{'(a)/(r)':28} {accepted.best() / reference.best():10.2f}"
            f" {accepted.median() / reference.median():10.2f}"
        )
    if end_to_end.values and ceiling.values:
        print(
            f"{'(b)/(c)':28} {end_to_end.best() / ceiling.best():10.2f}"
            f" {end_to_end.median() / ceiling.median():10.2f}"
        )
    if end_to_end.values and reference.values:
        print(
            f"{'(b)/(r)':28} {end_to_end.best() / reference.best():10.2f}"
            f" {end_to_end.median() / reference.median():10.2f}"
        )
    print("targets: (a) >= 600 req/s with p99 < 150 ms; (b) >= 400 emails/s")
    if reference.values:
        # The issue set its targets on a machine where (r) was about 1,100 req/s: scaled
        # by this run's (r), they say what this machine should reach.
        scale = reference.median() / REFERENCE_MACHINE_RPS
        print(
            f"scaled by (r) {reference.median():.0f} / {REFERENCE_MACHINE_RPS}:"
            f" (a) >= {600 * scale:.0f} req/s, (b) >= {400 * scale:.0f} emails/s"
        )


if __name__ == "__main__":
    main()
