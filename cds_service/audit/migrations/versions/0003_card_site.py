"""The site of each card's call and the regimen it was checked against (site adaptations, issue 18).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Cards recorded before this revision keep null site and regimen_canonical; the report then names the site by
the caller's tenant (as before) and the regimen by its key only.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without defaults: instant on SQLite and PostgreSQL, no table rewrite.
    op.add_column("audit_card", sa.Column("site", sa.Text))
    op.add_column("audit_card", sa.Column("regimen_canonical", sa.Text))


def downgrade() -> None:
    # batch mode: SQLite before 3.35 cannot drop a column in place.
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_column("regimen_canonical")
        batch.drop_column("site")
