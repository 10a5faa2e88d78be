"""Bounce classes (issue 21): a failure's class on the delivery, destinations that block,
and stored failures classified again

Until now every 5xx reply was a Permanent bounce, so a blocked sending IP or a DMARC
refusal suppressed good recipients and could suspend the workspace. This adds the class
and subclass of a delivery's last failure, the ``destination_block`` table, and then runs
delivery/reclassify.py over the stored data: deliveries and Bounce events get their
classes, suppressions whose bounce is no longer hard are lifted, and so are bounce-rate
suspensions the corrected rates no longer call for. It prints what it changed (``posthouse
migrate`` shows it); ``posthouse reclassify --dry-run`` shows the same counts without
changing anything.

Downgrading drops the columns and the table; lifted suppressions and suspensions stay
lifted.

Revision ID: 0004_issue21
Revises: i17_templates
Create Date: 2026-12-04 14:30:00
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from posthouse.db.base import utcnow
from posthouse.delivery.reclassify import reclassify

revision: str = "0004_issue21"
down_revision: str | None = "i17_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_class", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("failure_subclass", sa.String(length=32), nullable=True))
    op.create_table(
        "destination_block",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("sending_domain", sa.String(length=255), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subclass", sa.String(length=32), nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_destination_block_workspace_id_workspace"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destination_block")),
        sa.UniqueConstraint(
            "workspace_id",
            "sending_domain",
            "destination",
            name=op.f("uq_destination_block_workspace_id_sending_domain_destination"),
        ),
    )
    report = reclassify(op.get_bind(), now=utcnow())
    if report.changed:
        # Alembic's own logging is not configured by ``posthouse migrate``.
        sys.stdout.write("migration 0004 (bounce classes) classified stored failures again:\n")
        sys.stdout.writelines(f"  {line}\n" for line in report.lines())


def downgrade() -> None:
    op.drop_table("destination_block")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("failure_subclass")
        batch_op.drop_column("failure_class")
