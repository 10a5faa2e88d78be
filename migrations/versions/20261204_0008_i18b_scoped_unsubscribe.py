"""Use-case engagement defaults and use-case-scoped suppressions (issue 18)

A use case may set track_opens / track_clicks for the mail sent through it (NULL: the
workspace's). A suppression applies to the whole workspace or to one use case:
``scope_id`` is the use case, or the nil UUID for the workspace. It is never NULL, so the
unique constraint (workspace, address, scope) holds on both databases (NULLs are
distinct in a unique constraint). Existing entries are workspace-wide.

Revision ID: i18b_scoped_unsubscribe
Revises: i18_engagement
Create Date: 2026-12-04 17:10:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i18b_scoped_unsubscribe"
down_revision: str | None = "i18_engagement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORKSPACE_SCOPE = uuid.UUID(int=0)


def upgrade() -> None:
    with op.batch_alter_table("use_case") as batch:
        batch.add_column(sa.Column("track_opens", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("track_clicks", sa.String(5), nullable=True))
    with op.batch_alter_table("suppression") as batch:
        batch.add_column(sa.Column("scope_id", sa.Uuid(), nullable=True))
    # Bound, so each database stores the nil UUID in its own Uuid form.
    op.get_bind().execute(
        sa.text("UPDATE suppression SET scope_id = :scope").bindparams(
            sa.bindparam("scope", type_=sa.Uuid())
        ),
        {"scope": _WORKSPACE_SCOPE},
    )
    with op.batch_alter_table("suppression") as batch:
        batch.alter_column("scope_id", existing_type=sa.Uuid(), nullable=False)
        batch.drop_constraint("uq_suppression_workspace_id_address", type_="unique")
        batch.create_unique_constraint(
            "uq_suppression_workspace_id_address_scope_id", ["workspace_id", "address", "scope_id"]
        )


def downgrade() -> None:
    # Entries scoped to a use case have no place in a workspace-wide list: they go.
    op.get_bind().execute(
        sa.text("DELETE FROM suppression WHERE scope_id <> :scope").bindparams(
            sa.bindparam("scope", type_=sa.Uuid())
        ),
        {"scope": _WORKSPACE_SCOPE},
    )
    with op.batch_alter_table("suppression") as batch:
        batch.drop_constraint("uq_suppression_workspace_id_address_scope_id", type_="unique")
        batch.create_unique_constraint(
            "uq_suppression_workspace_id_address", ["workspace_id", "address"]
        )
        batch.drop_column("scope_id")
    with op.batch_alter_table("use_case") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
