"""The audit tables as SQLAlchemy Core objects (the migrations under migrations/ create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# Identifiers of the clients' cards are bounded so that they can be indexed on every back end.
CARD_UUID_MAX = 200

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ID = BigInteger().with_variant(Integer(), "sqlite")

# One row per card returned to a client. No name, no EHR identifier: the patient is a keyed hash,
# and the study subject identifier (a pseudonym by design in a trial) is kept in clear only on the
# cards that can become protocol deviations (see README, "Audit trail").
card = Table(
    "audit_card",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("card_uuid", String(CARD_UUID_MAX), nullable=False, unique=True),
    Column("service_id", String(100), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("hook_instance", Text, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("study", String(64)),
    Column("arm", String(16)),
    Column("regimen", String(32)),
    Column("cycle", Integer),
    Column("cycle_day", Integer),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Column("issuer", Text),
    Column("tenant", Text),
    Column("patient_key", String(64), nullable=False),
    # "study-subject" (ResearchSubject.identifier) or "ehr-patient" (context.patientId).
    Column("patient_key_source", String(16), nullable=False),
    Column("study_subject_id", Text),
    # The order's first day (`extension.dexfree.orderDate`), in the patients' calendar: what a deviation
    # is dated by. None for cards about no order, and for cards recorded before revision 0002.
    Column("order_date", Date),
    # The site the call was answered for (JWT tenant, fhirServer or CDS_DEFAULT_SITE; None: the published
    # regimens) and the regimen the card checked against (`extension.dexfree.regimenCanonical`, url|version):
    # None for cards recorded before revision 0003.
    Column("site", Text),
    Column("regimen_canonical", Text),
    Index("ix_audit_card_shown_at", "shown_at"),
)

# One row per distinct feedback entry; the same entry sent again hits `dedup_key` and is not stored.
feedback = Table(
    "audit_feedback",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("card_uuid", String(CARD_UUID_MAX), nullable=False),
    Column("service_id", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_at", DateTime(timezone=True), nullable=False),
    # JSON array of suggestion uuids.
    Column("accepted_suggestions", Text),
    Column("override_system", Text),
    Column("override_code", Text),
    Column("override_display", Text),
    # Free text from the clinician: may hold PHI; stored for the trial team, never logged.
    Column("user_comment", Text),
    # False while no card with this uuid is recorded (set when the card arrives after its feedback).
    Column("card_known", Boolean, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("issuer", Text),
    Column("tenant", Text),
    Index("ix_audit_feedback_card_uuid", "card_uuid"),
)

# Values every worker and replica must agree on (the pseudonym salt when none is configured).
setting = Table(
    "audit_setting",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
