"""Audit tables: cards shown, feedback received, shared settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

A migration states its schema in full rather than importing cds_service.audit.schema, so that
later changes to the live tables do not rewrite history.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_card",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(200), nullable=False, unique=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("hook_instance", sa.Text, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("study", sa.String(64)),
        sa.Column("arm", sa.String(16)),
        sa.Column("regimen", sa.String(32)),
        sa.Column("cycle", sa.Integer),
        sa.Column("cycle_day", sa.Integer),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuer", sa.Text),
        sa.Column("tenant", sa.Text),
        sa.Column("patient_key", sa.String(64), nullable=False),
        sa.Column("patient_key_source", sa.String(16), nullable=False),
        sa.Column("study_subject_id", sa.Text),
    )
    op.create_index("ix_audit_card_shown_at", "audit_card", ["shown_at"])
    op.create_table(
        "audit_feedback",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(64), nullable=False, unique=True),
        sa.Column("card_uuid", sa.String(200), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_suggestions", sa.Text),
        sa.Column("override_system", sa.Text),
        sa.Column("override_code", sa.Text),
        sa.Column("override_display", sa.Text),
        sa.Column("user_comment", sa.Text),
        sa.Column("card_known", sa.Boolean, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuer", sa.Text),
        sa.Column("tenant", sa.Text),
    )
    op.create_index("ix_audit_feedback_card_uuid", "audit_feedback", ["card_uuid"])
    op.create_table(
        "audit_setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_setting")
    op.drop_index("ix_audit_feedback_card_uuid", "audit_feedback")
    op.drop_table("audit_feedback")
    op.drop_index("ix_audit_card_shown_at", "audit_card")
    op.drop_table("audit_card")
