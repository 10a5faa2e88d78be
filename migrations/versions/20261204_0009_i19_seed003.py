"""Seed 003 (issue 19): messages found by their external id within a workspace

``getMessageInfo`` looks messages up by the caller's ``X-Unique-Id`` (stored as
``message.external_id``) within the caller's workspace, in the order they were accepted:
one index range on (workspace_id, external_id, created_at). The index on external_id
alone served no query, and across workspaces it matched other tenants' rows too.

Revision ID: i19_seed003
Revises: i18b_scoped_unsubscribe
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "i19_seed003"
down_revision: str | None = "i18b_scoped_unsubscribe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_external_id")
        batch.create_index(
            "ix_message_workspace_external", ["workspace_id", "external_id", "created_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_workspace_external")
        batch.create_index("ix_message_external_id", ["external_id"])
