"""Bounce classifier cost per failure: every rule's own reply (the worst cases are the
phrase rules, read after the status rules) and the first load of the rules; and what
the worker now adds to every accepted delivery (DestinationBlocks.judge on a sent one).

    .venv/bin/python -m bench.classify [--rounds 200]
"""

import argparse
import time
import uuid
from dataclasses import dataclass

from posthouse.delivery.blocks import DestinationBlocks
from posthouse.delivery.classify import classify_line, rules
from posthouse.delivery.transports.base import Outcome, SendResult


@dataclass(frozen=True)
class _Copy:
    recipient: str
    workspace_id: uuid.UUID


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds

    started = time.perf_counter()
    table = rules()
    loaded_ms = (time.perf_counter() - started) * 1000
    replies = list(table.examples.values())
    slowest = (0.0, "")
    started = time.perf_counter()
    for _ in range(rounds):
        for reply in replies:
            classify_line(reply)
    per_reply_us = (time.perf_counter() - started) / (rounds * len(replies)) * 1e6
    for reply in replies:
        t0 = time.perf_counter()
        for _ in range(rounds):
            classify_line(reply)
        took = (time.perf_counter() - t0) / rounds * 1e6
        slowest = max(slowest, (took, reply))
    print(f"rules: {len(replies)}; loading and compiling them once: {loaded_ms:.1f} ms")
    print(f"classify, mean over every rule's reply: {per_reply_us:.1f} µs per failure")
    print(f"slowest reply: {slowest[0]:.1f} µs ({slowest[1][:60]}...)")

    blocks = DestinationBlocks(action="defer", backoff_seconds=900, max_backoff_seconds=14400)
    sent = SendResult(Outcome.SENT, 250, "2.0.0 Ok")
    copy = _Copy("alice@example.com", uuid.uuid4())
    count = rounds * 1000
    started = time.perf_counter()
    for _ in range(count):
        blocks.held_back(copy, sending_domain="shop.example")
        blocks.judge(sent, copy, sending_domain="shop.example")
    per_sent_us = (time.perf_counter() - started) / count * 1e6
    print(f"worker's added cost per accepted delivery (held_back + judge): {per_sent_us:.2f} µs")


if __name__ == "__main__":
    main()
