"""Issue 19: a message's own text-part, signing, return-path and tracking choices

``auto_text`` false: an HTML-only message goes without a text part generated from its
HTML. ``signing_domain``, ``return_path_domain`` and ``tracking_domain`` name domains of
the message's workspace its copies go out with instead of the From domain's: DKIM d=
and key, the envelope sender's domain, the tracking links' host. NULL, as for every
message before: the From domain's identity and POSTHOUSE_PUBLIC_URL.

Revision ID: i19_identity
Revises: i19_seed003
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i19_identity"
down_revision: str | None = "i19_seed003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("auto_text", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("signing_domain", sa.String(253), nullable=True))
        batch.add_column(sa.Column("return_path_domain", sa.String(253), nullable=True))
        batch.add_column(sa.Column("tracking_domain", sa.String(253), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("tracking_domain")
        batch.drop_column("return_path_domain")
        batch.drop_column("signing_domain")
        batch.drop_column("auto_text")
