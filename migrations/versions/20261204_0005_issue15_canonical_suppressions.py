"""Suppressed addresses in their canonical form (issue 15)

Every comparison of two addresses now uses one form, the whole address lower-cased
(sending.addresses.address_key); entries stored before kept the local part as given, so
``Victim@example.com`` did not match a send to ``victim@example.com``. Entries that
become equal keep the first one added (its reason and source event).

Revision ID: 0004_issue15
Revises: 0004_issue21
Create Date: 2026-12-04 14:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_issue15"
down_revision: str | None = "0004_issue21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM suppression
        WHERE EXISTS (
            SELECT 1 FROM suppression AS first
            WHERE first.workspace_id = suppression.workspace_id
              AND lower(first.address) = lower(suppression.address)
              AND (first.created_at < suppression.created_at
                   OR (first.created_at = suppression.created_at AND first.id < suppression.id))
        )
        """
    )
    op.execute("UPDATE suppression SET address = lower(address) WHERE address <> lower(address)")


def downgrade() -> None:
    # The case an address was first given in is gone; lower-cased entries stay valid.
    pass
