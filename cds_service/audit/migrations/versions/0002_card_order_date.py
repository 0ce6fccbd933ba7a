"""The order's first day on each card row, so that the deviation report dates a warning by its order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Cards recorded before this revision keep a null order_date; the report then says the order's day was not
recorded and shows the day the card was shown.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: an instant change on SQLite and PostgreSQL, no table rewrite.
    op.add_column("audit_card", sa.Column("order_date", sa.Date))


def downgrade() -> None:
    # batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_column("order_date")
