"""Benchmark of issue 17: personalised template sends against the same mail without
templates, end to end, same run.

"template": a stored template (subject and ~5 KB of HTML, five variables: three per
recipient, two common) sent to ten recipients per request, each with their own values,
so each recipient's copy is rendered, built and sent on its own. "plain": the same mail
(same size, same ten recipients) with the values already in it, built once per message.

Both go through ``posthouse api --workers 2`` and one ``posthouse worker`` on a scratch
PostgreSQL database to Postfix's smtp-sink, driven by wrk (as bench/spine.py (b): a
fixed number of sends, the clock stopped when every copy is at the sink), in
alternating runs. Prints each run, best and median per mode, and the ratios
template/plain of deliveries/s and of the worker's CPU per delivery (the issue's bar:
template >= 0.8 x plain deliveries/s).

    .venv/bin/python bench/templates.py [--repeat 3] [--sends 600]
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ leads sys.path and its dkim.py would shadow dkimpy's ``dkim``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.spine import (  # noqa: E402
    POSTHOUSE,
    SENDER,
    Figures,
    Processes,
    Sink,
    backend_cpu,
    backend_cpu_since,
    calibration_ms,
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

MODES = ("plain", "template")
RECIPIENTS = [f"customer{i}@sink.posthouse.example" for i in range(10)]
FIRST_NAMES = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo"]
CITIES = ["Amsterdam", "Berlin", "Cork", "Delft", "Essen", "Faro", "Ghent", "Hull", "Ivrea", "Jena"]


def html(first_name: str, last_name: str, city: str, order: str, total: str) -> str:
    """~5 KB of order-confirmation HTML with the five values in it."""
    rows = "".join(
        f"<tr><td>Item {i}</td><td>Widget model {i:03d}, blue</td><td>{i * 3}.90 EUR</td></tr>"
        for i in range(88)
    )
    return (
        f"<html><body><h1>Thanks for your order, {first_name} {last_name}</h1>"
        f"<p>Order {order} ships to {city}; the total is {total}.</p><table>{rows}</table>"
        f"<p>See you soon, {first_name}!</p></body></html>"
    )


TEMPLATE = {
    "subject": "Your order {{ order }}, {{ first_name }}",
    "html": html("{{ first_name }}", "{{ last_name }}", "{{ city }}", "{{ order }}", "{{ total }}"),
}


def payload(mode: str) -> dict[str, Any]:
    """The request of each mode; ``@@N@@`` is the per-request counter wrk fills in."""
    common = {"from": SENDER, "to": RECIPIENTS}
    if mode == "plain":
        return {
            **common,
            "subject": "Your order @@N@@, Ada",
            "body": html("Ada", "Lovelace", "Amsterdam", "@@N@@", "99.90 EUR"),
        }
    return {
        **common,
        "template": 1,
        "variables": {"order": "@@N@@", "total": "99.90 EUR"},
        "recipientVariables": {
            address: {"first_name": first, "last_name": "Lovelace", "city": city}
            for address, first, city in zip(RECIPIENTS, FIRST_NAMES, CITIES, strict=True)
        },
    }


def request_files(directory: Path, mode: str, access: str, secret: str) -> tuple[Path, Path]:
    boundary = "----posthouse-bench-" + secrets.token_hex(8)
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="payload"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            json.dumps(payload(mode)).encode(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    body_file, headers_file = directory / f"{mode}.body", directory / f"{mode}.headers"
    body_file.write_bytes(body)
    headers_file.write_text(
        f"Content-Type: multipart/form-data; boundary={boundary}\n"
        f"X-Api-Access-Token: {access}\nX-Api-Secret-Token: {secret}\n"
    )
    return body_file, headers_file


def posthouse(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [str(POSTHOUSE), *args], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout) if "--json" in args else done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="posthouse_bench_templates")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode")
    parser.add_argument("--sends", type=int, default=600, help="requests per run (x10 copies)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--modes", default="plain,template", help="which modes to run")
    parser.add_argument(
        "--profile", action="store_true", help="run the worker under py-spy (collapsed stacks)"
    )
    args = parser.parse_args()
    check_tools()
    logs = Path(tempfile.mkdtemp(prefix="posthouse-bench-templates-"))
    processes = Processes(logs, profile=args.profile)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, processes, logs)
    finally:
        processes.stop_all()
        print(f"logs: {logs}")


def run(args: argparse.Namespace, processes: Processes, logs: Path) -> None:
    print(
        f"cores: {os.cpu_count()}  load before: {load_average()}"
        f"  calibration: {calibration_ms():.0f} ms for sum(range(10**7))"
    )
    sink = Sink(processes)
    database_url = reset_database(args.admin_url, args.database)
    env = {
        **os.environ,
        "POSTHOUSE_DATABASE_URL": database_url,
        "POSTHOUSE_DELIVERY_URL": f"smtp://127.0.0.1:{sink.port}",
        "POSTHOUSE_RATE_LIMIT_PER_IP": "0",
        "POSTHOUSE_RATE_LIMIT_PER_KEY": "0",
        "POSTHOUSE_REQUIRE_VERIFIED_DOMAINS": "false",
        "POSTHOUSE_ENVIRONMENT": "development",
    }
    posthouse(env, "migrate")
    issued = posthouse(env, "sender", "add", SENDER, "--workspace", "bench", "--json")
    html_file = logs / "template.html"
    html_file.write_text(TEMPLATE["html"])
    posthouse(
        env, "template", "add", "--workspace", "bench", "--name", "order",
        "--subject", TEMPLATE["subject"], "--html-file", str(html_file), "--json",
    )  # fmt: skip
    files = {
        mode: request_files(logs, mode, issued["accessToken"], issued["secretToken"])
        for mode in MODES
    }
    api_port = free_port()
    processes.start("api", [str(POSTHOUSE), "api", "--port", str(api_port), "--workers", "2"], env)
    wait_until("the api", lambda: healthy(api_port))

    rates = {mode: Figures(f"{mode}: deliveries/s end to end", "copies/s") for mode in MODES}
    accepted = {mode: Figures(f"{mode}: sends accepted/s", "req/s") for mode in MODES}
    worker_cost = {
        mode: Figures(f"{mode}: worker cpu per copy", "ms", higher_is_better=False)
        for mode in MODES
    }
    api_cost = {
        mode: Figures(f"{mode}: api cpu per send", "ms", higher_is_better=False) for mode in MODES
    }
    # Warm up both modes: imports, pools, caches, and rows for the planner's statistics.
    for mode in MODES:
        body, headers = files[mode]
        run_wrk(
            port=api_port, body=body, headers=headers, connections=args.connections,
            threads=2, duration=2,
        )  # fmt: skip
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    for number in range(args.repeat):
        for mode in modes if number % 2 == 0 else reversed(modes):
            body, headers = files[mode]
            clear_messages(database_url)
            log = processes.start("worker", [str(POSTHOUSE), "worker"], env, profiled=True)
            wait_until("the worker", lambda log=log: "started" in log.read_text())
            worker_cpu, api_cpu = processes.cpu("worker"), processes.cpu("api")
            pg_cpu = backend_cpu(database_url, args.database)
            before = sink.messages()
            started = time.perf_counter()
            result = run_wrk(
                port=api_port, body=body, headers=headers, connections=args.connections,
                threads=2, duration=args.sends, limit=args.sends,
            )  # fmt: skip
            total = -1
            while total != (total := delivery_counts(database_url)[0]):
                time.sleep(0.3)

            def delivered(total: int = total, before: int = before, log: Path = log) -> bool:
                if not processes.alive("worker"):
                    raise RuntimeError(f"the worker died; see {log}")
                return (
                    sink.messages() - before >= total or delivery_counts(database_url)[1] >= total
                )

            wait_until("every copy to reach the sink", delivered, timeout=900)
            elapsed = time.perf_counter() - started
            sends = total // len(RECIPIENTS)
            rates[mode].add(total / elapsed)
            accepted[mode].add(result.requests_per_second)
            worker_cost[mode].add((processes.cpu("worker") - worker_cpu) * 1000 / max(1, total))
            api_cost[mode].add((processes.cpu("api") - api_cpu) * 1000 / max(1, sends))
            pg_ms = backend_cpu_since(database_url, args.database, pg_cpu) * 1000 / max(1, total)
            processes.stop("worker")
            print(
                f"run {number + 1} {mode:8}: {sends} sends ({total} copies) accepted at"
                f" {result.requests_per_second:.0f}/s, all at the sink after {elapsed:.1f} s:"
                f" {total / elapsed:7.1f} copies/s; cpu: worker {worker_cost[mode].values[-1]:.2f}"
                f" ms/copy, api {api_cost[mode].values[-1]:.2f} ms/send, postgres"
                f" {pg_ms:.2f} ms/copy  load {load_average()}"
            )
    processes.stop("api")

    print()
    print(f"{'measurement':36} {'best':>10} {'median':>10}  unit")
    for figures in (*rates.values(), *accepted.values(), *worker_cost.values(), *api_cost.values()):
        if figures.values:
            print(
                f"{figures.name:36} {figures.best():10.2f} {figures.median():10.2f}  {figures.unit}"
            )
    if len(modes) < len(MODES):
        return
    for name, table in (
        ("deliveries/s", rates),
        ("sends accepted/s", accepted),
        ("worker cpu per copy", worker_cost),
        ("api cpu per send", api_cost),
    ):
        best = table["template"].best() / table["plain"].best()
        median = table["template"].median() / table["plain"].median()
        print(f"{'template/plain ' + name:36} {best:10.2f} {median:10.2f}")
    print("target: template/plain deliveries/s >= 0.8")


if __name__ == "__main__":
    main()
