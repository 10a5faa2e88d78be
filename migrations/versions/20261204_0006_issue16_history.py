"""History (issue 16): use cases, per-recipient state and setup, tier, the event feed

- ``use_case``: a named stream bound to one sending domain (seed 004's "email setup").
- ``delivery`` gets what the history lists filter and page by, so each list is one index
  range: ``from_domain`` (the setup), ``use_case_id`` and ``state`` (the derived state,
  kept by ``events.ingest``). Its ``workspace_id`` index becomes
  (workspace_id, from_domain, created_at, id): the reputation queries that used it still
  find their rows by its first column, and an accepted send maintains no more indexes
  than before. The other new indexes are partial: the use-case ones only hold mail sent
  through a use case, the state one only rows no longer ``sent``, so a native send
  writes none of them.
- ``message`` records its use case and the workspace's reputation tier at accept time;
  ``workspace`` keeps that tier as its rates were last judged.
- ``event.feed_txid`` (PostgreSQL): the inserting transaction's id, so the polling feed
  can hand out only events whose transactions every later reader will also see.

Revision ID: 0004_issue16
Revises: 0004_issue15
Create Date: 2026-12-04 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_issue16"
down_revision: str | None = "0004_issue15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USE_CASE = sa.text("use_case_id IS NOT NULL")
DECIDED = sa.text("state <> 'sent'")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "use_case",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("domain_id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("from_email", sa.String(length=320), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_use_case_workspace_id_workspace")
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domain.id"], name=op.f("fk_use_case_domain_id_domain")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["sender.id"], name=op.f("fk_use_case_sender_id_sender")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_use_case")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_use_case_workspace_id_name")),
    )
    with op.batch_alter_table("use_case") as batch:
        batch.create_index(batch.f("ix_use_case_domain_id"), ["domain_id"])

    with op.batch_alter_table("workspace") as batch:
        batch.add_column(
            sa.Column("reputation_tier", sa.String(16), nullable=False, server_default="new")
        )
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("use_case_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("tier", sa.String(16), nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("use_case_id", sa.Uuid(), nullable=True))
        batch.add_column(
            sa.Column("from_domain", sa.String(255), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("state", sa.String(12), nullable=False, server_default="sent"))
    domain_of = (
        "split_part(m.from_email, '@', 2)"
        if postgresql
        else "substr(m.from_email, instr(m.from_email, '@') + 1)"
    )
    op.execute(
        f"UPDATE delivery SET from_domain = (SELECT {domain_of} FROM message m"
        " WHERE m.id = delivery.message_id)"
    )
    # The state as the events stored so far make it, highest precedence first.
    cases = " ".join(
        f"WHEN EXISTS (SELECT 1 FROM event e WHERE e.delivery_id = delivery.id"
        f" AND e.type = '{event}') THEN '{state}'"
        for event, state in (
            ("Complaint", "complained"),
            ("Bounce", "bounced"),
            ("Reject", "rejected"),
            ("Delivery", "delivered"),
        )
    )
    op.execute(f"UPDATE delivery SET state = CASE {cases} ELSE 'sent' END")
    with op.batch_alter_table("delivery") as batch:
        batch.alter_column("from_domain", server_default=None)
        batch.drop_index("ix_delivery_workspace_id")
        batch.create_index("ix_delivery_setup", ["workspace_id", "from_domain", "created_at", "id"])
        batch.create_index(
            "ix_delivery_setup_state",
            ["workspace_id", "from_domain", "state", "created_at", "id"],
            postgresql_where=DECIDED,
            sqlite_where=DECIDED,
        )
        batch.create_index(
            "ix_delivery_use_case",
            ["use_case_id", "created_at", "id"],
            postgresql_where=USE_CASE,
            sqlite_where=USE_CASE,
        )
        batch.create_index(
            "ix_delivery_use_case_recipient",
            ["use_case_id", "recipient", "created_at", "id"],
            postgresql_where=USE_CASE,
            sqlite_where=USE_CASE,
        )
        batch.create_index(
            "ix_delivery_use_case_state",
            ["use_case_id", "state", "created_at", "id"],
            postgresql_where=sa.text("use_case_id IS NOT NULL AND state <> 'sent'"),
            sqlite_where=sa.text("use_case_id IS NOT NULL AND state <> 'sent'"),
        )

    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("feed_txid", sa.BigInteger(), nullable=True))
    if postgresql:
        # Events stored before this migration are all committed: 0 puts them first.
        op.execute("UPDATE event SET feed_txid = 0")
        op.execute(
            "ALTER TABLE event ALTER COLUMN feed_txid"
            " SET DEFAULT (pg_current_xact_id()::text)::bigint"
        )
    with op.batch_alter_table("event") as batch:
        batch.create_index("ix_event_feed", ["workspace_id", "feed_txid", "id"])


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_index("ix_event_feed")
        batch.drop_column("feed_txid")
    with op.batch_alter_table("delivery") as batch:
        for name in (
            "ix_delivery_use_case_state",
            "ix_delivery_use_case_recipient",
            "ix_delivery_use_case",
            "ix_delivery_setup_state",
            "ix_delivery_setup",
        ):
            batch.drop_index(name)
        batch.create_index("ix_delivery_workspace_id", ["workspace_id"])
        batch.drop_column("state")
        batch.drop_column("from_domain")
        batch.drop_column("use_case_id")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("tier")
        batch.drop_column("use_case_id")
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("reputation_tier")
    with op.batch_alter_table("use_case") as batch:
        batch.drop_index(batch.f("ix_use_case_domain_id"))
    op.drop_table("use_case")
