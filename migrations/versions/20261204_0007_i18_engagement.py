"""Engagement (issue 18): tracking options, tracked attachments, recorded links

Messages say whether their HTML and text links are tracked, whether they carry one-click
unsubscribe and where it redirects; workspaces give the defaults (off); an attachment can
be served through a tracking link; ``tracked_link`` holds every link target recorded when
a delivery's copy was built, so a click redirects only to a recorded URL.

Revision ID: i18_engagement
Revises: 0004_issue16
Create Date: 2026-12-04 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i18_engagement"
down_revision: str | None = "0004_issue16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(
            sa.Column("track_opens", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("track_clicks", sa.String(5), nullable=False, server_default="none")
        )
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("track_text_clicks", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("unsubscribe", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("unsubscribe_redirect_url", sa.Text(), nullable=True))
    with op.batch_alter_table("attachment") as batch:
        batch.add_column(
            sa.Column("track", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "tracked_link",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name="fk_tracked_link_delivery_id_delivery"
        ),
        sa.PrimaryKeyConstraint("delivery_id", "position", name="pk_tracked_link"),
    )


def downgrade() -> None:
    op.drop_table("tracked_link")
    with op.batch_alter_table("attachment") as batch:
        batch.drop_column("track")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("unsubscribe_redirect_url")
        batch.drop_column("unsubscribe")
        batch.drop_column("track_text_clicks")
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
