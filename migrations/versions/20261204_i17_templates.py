"""Templates with versions; what a message needs to render each recipient's copy (issue 17)

The ``template`` table of the initial schema was a placeholder nothing wrote to: it is
replaced by ``template`` (per-workspace number, published version, soft delete) and
``template_version`` (immutable content). ``message`` gains the template version it was
accepted with, the values it is personalised with, the subject's source and a preheader.

Revision ID: i17_templates
Revises: 0003
Create Date: 2026-12-04 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i17_templates"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _drop_placeholder() -> None:
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_workspace_id"))
    op.drop_table("template")


def upgrade() -> None:
    _drop_placeholder()
    op.create_table(
        "template",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_template_workspace_id_workspace")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template")),
        sa.UniqueConstraint("workspace_id", "number", name=op.f("uq_template_workspace_id_number")),
    )
    op.create_table(
        "template_version",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"], ["template.id"], name=op.f("fk_template_version_template_id_template")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_version")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_template_version_template_id_version")
        ),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_version_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("variables", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("recipient_variables", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("subject_template", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("preheader", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("preheader")
        batch_op.drop_column("subject_template")
        batch_op.drop_column("recipient_variables")
        batch_op.drop_column("variables")
        batch_op.drop_column("template_version_id")
    op.drop_table("template_version")
    op.drop_table("template")
    op.create_table(
        "template",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_template_workspace_id_workspace")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template")),
    )
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_workspace_id"), ["workspace_id"], unique=False
        )
