"""`posthouse reclassify [--dry-run]` over data the old rule wrote (every 5xx a Permanent
bounce): blocks stop counting, their suppressions and the suspension they caused are
lifted, and a real hard bounce stays."""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from posthouse import cli
from posthouse.config import Settings, get_settings
from posthouse.db.base import utcnow
from posthouse.db.migrate import alembic_config
from posthouse.db.models import Delivery, Domain, Event, Suppression, Workspace
from posthouse.delivery.worker import Worker
from posthouse.protections.suppression import AutomaticEntry, SuppressionReason, add_automatic
from tests.conftest import SenderTokens
from tests.helpers import settle
from tests.protections.support import send, set_workspace
from tests.smtp_server import SmtpServer

Sessionmaker = async_sessionmaker[AsyncSession]
BLOCKED = "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"block_action": "fail"})


@pytest.fixture
def posthouse(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POSTHOUSE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _cli(*args: str) -> str:
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


async def _old_rule_data(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    worker: Worker,
    smtp_server: SmtpServer,
) -> None:
    """Two delivered, one hard bounce, one block, one held, as the old rule stored them:
    both bounces Permanent, both recipients suppressed, the workspace suspended."""
    for recipient in ("ok1@example.com", "ok2@example.com"):
        assert (await send(client, sender, [recipient])).status_code == 202
    await settle(worker, sessionmaker)
    smtp_server.handler.rcpt_replies.extend(["550 5.1.1 user unknown", BLOCKED])
    for recipient in ("gone@example.com", "blocked@example.com"):
        assert (await send(client, sender, [recipient])).status_code == 202
        await settle(worker, sessionmaker)
    assert (await send(client, sender, ["held@example.com"])).status_code == 202
    async with sessionmaker.begin() as session:
        bounces = list(await session.scalars(select(Event).where(Event.type == "Bounce")))
        for event in bounces:
            old = {k: v for k, v in event.data.items() if k not in ("class", "subclass")}
            event.data = old | {"bounce_type": "Permanent", "bounce_subtype": "General"}
        await add_automatic(
            session,
            entries=[
                AutomaticEntry(
                    event.workspace_id,
                    event.data["recipient"],
                    SuppressionReason.HARD_BOUNCE,
                    event.id,
                )
                for event in bounces
            ],
        )
        await session.execute(update(Delivery).values(failure_class=None, failure_subclass=None))
        await session.execute(
            update(Delivery).where(Delivery.recipient == "held@example.com").values(status="held")
        )
    # Two Permanent of four: over 0.3. With the block reclassified, one of three is not.
    await set_workspace(
        sessionmaker,
        rate_min_volume=3,
        max_bounce_rate=0.4,
        suspended_at=utcnow(),
        suspension_reason="high bounce rate",
    )


async def _state(sessionmaker: Sessionmaker) -> dict[str, Any]:
    async with sessionmaker() as session:
        workspace = await session.scalar(select(Workspace))
        assert workspace is not None
        return {
            "suppressed": sorted(await session.scalars(select(Suppression.address))),
            "suspended": workspace.suspended_at is not None,
            "classes": {
                d.recipient: (d.status, d.failure_class)
                for d in await session.scalars(select(Delivery))
            },
            "bounces": sorted(
                (e.data["recipient"], e.data["bounce_type"], e.data.get("class"))
                for e in await session.scalars(select(Event).where(Event.type == "Bounce"))
            ),
        }


async def test_a_dry_run_counts_then_the_run_lifts(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    worker: Worker,
    smtp_server: SmtpServer,
    posthouse: None,
) -> None:
    await _old_rule_data(client, sender, sessionmaker, worker, smtp_server)
    before = await _state(sessionmaker)
    assert before["suppressed"] == ["blocked@example.com", "gone@example.com"]
    assert before["suspended"]

    dry = await _cli("reclassify", "--dry-run")

    assert "bounce events changed:     2 (1 no longer Permanent)" in dry
    assert "suppressions lifted:       1" in dry
    assert "suspensions lifted:        1\n  acme" in dry
    assert "held deliveries released:  1" in dry
    assert "dry run: nothing was changed" in dry
    assert await _state(sessionmaker) == before

    done = await _cli("reclassify")

    assert "suppressions lifted:       1" in done
    after = await _state(sessionmaker)
    assert after["suppressed"] == ["gone@example.com"]
    assert not after["suspended"]
    assert after["classes"] == {
        "ok1@example.com": ("sent", None),
        "ok2@example.com": ("sent", None),
        "gone@example.com": ("bounced", "hard"),
        "blocked@example.com": ("bounced", "block"),
        "held@example.com": ("queued", None),
    }
    assert after["bounces"] == [
        ("blocked@example.com", "Transient", "block"),
        ("gone@example.com", "Permanent", "hard"),
    ]
    # A second run finds nothing left to change.
    again = await _cli("reclassify")
    assert "bounce events changed:     0" in again


async def test_workspace_show_and_domain_show_print_who_blocks_the_mail(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    worker: Worker,
    smtp_server: SmtpServer,
    posthouse: None,
) -> None:
    async with sessionmaker.begin() as session:
        workspace = await session.scalar(select(Workspace))
        assert workspace is not None
        session.add(
            Domain(
                workspace_id=workspace.id,
                name="yourstore.example",
                return_path_domain="bounces.yourstore.example",
            )
        )
    smtp_server.handler.rcpt_replies.append(BLOCKED)
    assert (await send(client, sender, ["someone@example.com"])).status_code == 202
    await settle(worker, sessionmaker)

    shown = await _cli("workspace", "show", "acme")
    domain = await _cli("domain", "show", "yourstore.example")

    line = "yourstore.example: blocked by example.com since "
    assert line in shown
    assert line in domain
    assert shown.rstrip().endswith(f": {BLOCKED}")
    assert domain.rstrip().endswith(f": {BLOCKED}")


async def test_migration_0004_reclassifies_what_the_old_rule_stored(
    client: httpx.AsyncClient,
    sender: SenderTokens,
    sessionmaker: Sessionmaker,
    worker: Worker,
    smtp_server: SmtpServer,
    database_url: str,
) -> None:
    await _old_rule_data(client, sender, sessionmaker, worker, smtp_server)
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0004_issue21-1")

    await asyncio.to_thread(command.upgrade, config, "head")

    after = await _state(sessionmaker)
    assert after["suppressed"] == ["gone@example.com"]
    assert not after["suspended"]
    assert after["classes"]["blocked@example.com"] == ("bounced", "block")
    assert after["classes"]["held@example.com"] == ("queued", None)
    assert after["bounces"] == [
        ("blocked@example.com", "Transient", "block"),
        ("gone@example.com", "Permanent", "hard"),
    ]
