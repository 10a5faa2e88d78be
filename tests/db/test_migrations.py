import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import column, insert, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from posthouse.db.engine import create_engine
from posthouse.db.migrate import alembic_config
from posthouse.db.models import WORKSPACE_SCOPE, Base, Suppression, Workspace
from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart
from tests.smtp_server import SmtpServer

WORKSPACE = uuid.UUID(int=99)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    engine = create_engine(database_url, null_pool=True)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    await engine.dispose()

    assert differences == []


async def test_the_last_migration_goes_down_and_up_again(database_url: str) -> None:
    config = alembic_config(database_url)

    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(command.upgrade, config, "head")

    engine = create_engine(database_url, null_pool=True)
    async with engine.connect() as connection:
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    await engine.dispose()
    assert version == ScriptDirectory.from_config(config).get_current_head()


async def test_the_last_migration_goes_down_and_up_again_with_a_delivered_email(
    database_url: str,
    client: httpx.AsyncClient,
    sender: SenderTokens,
    worker: Worker,
    smtp_server: SmtpServer,
) -> None:
    # Rows in every table an email fills: on SQLite, changing a table's constraints
    # copies it, which its foreign keys refuse unless the migration turns them off.
    payload = {
        "from": sender.email,
        "to": ["ada@example.com"],
        "subject": "Kept across migrations",
        "body": "<p>Hello</p>",
    }
    files = [("terms.pdf", b"%PDF-1.4 terms", "application/pdf")]
    response = await client.post(
        "/api/v1/emails", headers=sender.headers, **multipart(payload, files)
    )
    assert response.status_code == 202
    reference = response.json()["referenceId"]
    assert await worker.run_until_idle() == 1
    config = alembic_config(database_url)

    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(command.upgrade, config, "head")

    shown = await client.get(f"/api/v1/emails/{reference}", headers=sender.headers)
    assert shown.status_code == 200
    assert shown.json()["subject"] == "Kept across migrations"
    assert [(r["status"], r["attempts"]) for r in shown.json()["recipients"]] == [("sent", 1)]
    assert len(smtp_server.handler.received) == 1


async def test_issue_19_messages_stored_before_it_keep_their_generated_text_part(
    database_url: str,
    client: httpx.AsyncClient,
    sender: SenderTokens,
    worker: Worker,
    smtp_server: SmtpServer,
) -> None:
    # Queued with autoText off, then the columns are dropped and added again: the row
    # reads as every message before the migration did (auto_text on, no domains).
    payload = {
        "from": sender.email,
        "to": ["ada@example.com"],
        "subject": "Queued across the migration",
        "body": "<p>Hello</p>",
        "autoText": False,
    }
    response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
    assert response.status_code == 202
    config = alembic_config(database_url)

    await asyncio.to_thread(command.downgrade, config, "i19_seed003")
    await asyncio.to_thread(command.upgrade, config, "i19_identity")

    engine = create_engine(database_url, null_pool=True)
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                text(
                    "SELECT auto_text, signing_domain, return_path_domain, tracking_domain "
                    "FROM message"
                )
            )
        ).one()
    await engine.dispose()
    assert tuple(stored) == (True, None, None, None)
    assert await worker.run_until_idle() == 1
    [received] = smtp_server.received
    parts = [part.get_content_type() for part in received.message().walk()]
    assert parts == ["multipart/alternative", "text/plain", "text/html"]


_WORKSPACE_AT_0004 = table(
    "workspace",
    *(
        column(name, Workspace.__table__.c[name].type)
        for name in ("id", "name", "max_bounce_rate", "max_complaint_rate", "rate_min_volume",
                     "rate_window_days", "created_at")
    ),
)  # fmt: skip
_SUPPRESSION_AT_0004 = table(
    "suppression",
    *(
        column(name, Suppression.__table__.c[name].type)
        for name in ("id", "workspace_id", "address", "reason", "created_at")
    ),
)


async def _insert_old_workspace(connection: AsyncConnection) -> None:
    """The workspace as its table was at 0004: later migrations add columns to it."""
    await connection.execute(
        insert(_WORKSPACE_AT_0004).values(
            id=WORKSPACE, name="w", max_bounce_rate=0.05, max_complaint_rate=0.001,
            rate_min_volume=100, rate_window_days=30, created_at=NOW,
        )
    )  # fmt: skip


async def test_issue_15_stores_suppressed_addresses_in_their_canonical_form(
    database_url: str,
) -> None:
    config = alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0004_issue15").down_revision
    await asyncio.to_thread(command.downgrade, config, before)
    engine = create_engine(database_url, null_pool=True)
    async with engine.begin() as connection:
        await _insert_old_workspace(connection)
        for number, (address, reason) in enumerate(
            [("Victim@example.com", "complaint"), ("victim@example.com", "manual"),
             ("Other@Example.com", "manual")]
        ):  # fmt: skip
            await connection.execute(
                insert(_SUPPRESSION_AT_0004).values(
                    id=uuid.UUID(int=number + 1),
                    workspace_id=WORKSPACE,
                    address=address,
                    reason=reason,
                    created_at=NOW + timedelta(seconds=number),
                )
            )

    await asyncio.to_thread(command.upgrade, config, "head")

    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT address, reason FROM suppression ORDER BY address")
        )
        assert [tuple(r) for r in rows] == [
            ("other@example.com", "manual"),
            ("victim@example.com", "complaint"),  # the first entry's cause is kept
        ]
    await engine.dispose()


async def test_issue_18_makes_existing_suppressions_workspace_wide_and_back(
    database_url: str,
) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "i18_engagement")
    engine = create_engine(database_url, null_pool=True)
    use_case = uuid.UUID(int=7)
    async with engine.begin() as connection:
        await _insert_old_workspace(connection)
        await connection.execute(
            insert(_SUPPRESSION_AT_0004).values(
                id=uuid.UUID(int=1),
                workspace_id=WORKSPACE,
                address="victim@example.com",
                reason="complaint",
                created_at=NOW,
            )
        )

    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.begin() as connection:
        scopes = list(await connection.scalars(select(Suppression.scope_id)))
        # The same address for one use case only: a second entry, not a conflict.
        await connection.execute(
            insert(Suppression).values(
                id=uuid.UUID(int=2),
                workspace_id=WORKSPACE,
                address="victim@example.com",
                reason="unsubscribe",
                scope_id=use_case,
                created_at=NOW,
            )
        )
    await asyncio.to_thread(command.downgrade, config, "i18_engagement")
    async with engine.connect() as connection:
        kept = [tuple(r) for r in await connection.execute(text("SELECT reason FROM suppression"))]
    await asyncio.to_thread(command.upgrade, config, "head")
    await engine.dispose()

    assert scopes == [WORKSPACE_SCOPE]
    assert kept == [("complaint",)]  # use-case entries have no place in the old list
