"""The per-destination backoff after a block, without a database: what is held back, for
how long, what is reported once, and what ends it."""

import time
import uuid
from dataclasses import dataclass

import pytest

from posthouse.delivery.blocks import DestinationBlocks
from posthouse.delivery.transports.base import Outcome, SendResult

BLOCK = SendResult(Outcome.BOUNCED, 550, "5.7.606 Access denied, banned sending IP [192.0.2.1]")
HARD = SendResult(Outcome.BOUNCED, 550, "5.1.1 user unknown")
SENT = SendResult(Outcome.SENT, 250, "2.0.0 Ok")
WORKSPACE = uuid.uuid4()


@dataclass(frozen=True)
class Copy:
    recipient: str
    workspace_id: uuid.UUID = WORKSPACE


def blocks(action: str = "defer", seconds: float = 60.0) -> DestinationBlocks:
    return DestinationBlocks(action=action, backoff_seconds=seconds, max_backoff_seconds=240.0)


def test_a_block_defers_the_copy_and_holds_back_only_its_destination() -> None:
    memory = blocks()
    judged = memory.judge(BLOCK, Copy("a@example.com"), sending_domain="shop.example")

    assert judged.send.outcome == Outcome.DEFERRED
    assert judged.send.retry_after == pytest.approx(60.0, abs=1.0)
    assert judged.verdict is not None
    assert (judged.verdict.klass, judged.verdict.subclass) == ("block", "ip_blocklisted")
    held = memory.held_back(Copy("b@EXAMPLE.com"), sending_domain="shop.example")
    assert held is not None
    assert held.send.outcome == Outcome.DEFERRED
    assert held.send.reply.startswith("4.7.0 held back: example.com blocks our mail since ")
    assert held.send.reply.endswith(": 550 5.7.606 Access denied, banned sending IP [192.0.2.1]")
    assert memory.held_back(Copy("c@elsewhere.example"), sending_domain="shop.example") is None


def test_a_block_is_reported_once_per_workspace_and_sending_domain_in_a_period() -> None:
    memory = blocks()
    first = memory.judge(BLOCK, Copy("a@example.com"), sending_domain="shop.example")
    again = memory.judge(BLOCK, Copy("b@example.com"), sending_domain="shop.example")
    held = memory.held_back(Copy("c@example.com"), sending_domain="shop.example")
    other_domain = memory.held_back(Copy("d@example.com"), sending_domain="news.example")
    other_workspace = memory.held_back(
        Copy("e@example.com", uuid.uuid4()), sending_domain="shop.example"
    )

    assert first.sighting is not None
    assert first.sighting.destination == "example.com"
    assert again.sighting is None
    assert held is not None
    assert held.sighting is None
    assert other_domain is not None
    assert other_domain.sighting is not None
    assert other_workspace is not None
    assert other_workspace.sighting is not None


def test_the_backoff_doubles_while_the_destination_keeps_blocking_and_is_capped() -> None:
    memory = blocks(seconds=100.0)
    waits = []
    for _ in range(4):
        judged = memory.judge(BLOCK, Copy("a@example.com"), sending_domain="shop.example")
        assert judged.send.retry_after is not None
        waits.append(round(judged.send.retry_after, -1))
        memory._backoffs["example.com"].until = time.monotonic()  # the period ends
    assert waits == [100.0, 200.0, 240.0, 240.0]


def test_an_accepted_delivery_ends_the_block_and_clears_what_was_reported() -> None:
    memory = blocks()
    memory.judge(BLOCK, Copy("a@example.com"), sending_domain="shop.example")

    judged = memory.judge(SENT, Copy("b@example.com"), sending_domain="shop.example")

    assert judged.cleared == (WORKSPACE, "shop.example", "example.com")
    assert memory.held_back(Copy("c@example.com"), sending_domain="shop.example") is None
    again = memory.judge(SENT, Copy("d@example.com"), sending_domain="shop.example")
    assert again.cleared is None


def test_with_fail_a_block_fails_the_copy_and_holds_nothing_back() -> None:
    memory = blocks(action="fail")
    judged = memory.judge(BLOCK, Copy("a@example.com"), sending_domain="shop.example")

    assert judged.send.outcome == Outcome.BOUNCED
    assert judged.sighting is not None
    assert memory.held_back(Copy("b@example.com"), sending_domain="shop.example") is None


def test_other_classes_are_left_as_they_are() -> None:
    memory = blocks()
    judged = memory.judge(HARD, Copy("a@example.com"), sending_domain="shop.example")

    assert judged.send is HARD
    assert judged.verdict is not None
    assert judged.verdict.klass == "hard"
    assert judged.sighting is None
    assert memory.held_back(Copy("b@example.com"), sending_domain="shop.example") is None


def test_a_copy_that_was_never_made_is_not_classified() -> None:
    rejected = SendResult(Outcome.REJECTED, None, "5.6.0 template: 'name' is undefined")

    judged = blocks().judge(rejected, Copy("a@example.com"), sending_domain="shop.example")

    assert (judged.send, judged.verdict, judged.sighting) == (rejected, None, None)
