"""What is recorded of a card and of a feedback entry: plain rows, built without I/O.

No name and no EHR identifier is ever put in a row. The patient is a keyed hash (HMAC) of the study
subject identifier (ResearchSubject.identifier for the card's study) or, when the record has none, of
the EHR patient id; `patient_key_source` says which. The study subject identifier itself, a pseudonym
by design in a trial, is kept in clear only on cards whose rule can make a protocol deviation: the
trial team needs it to find the subject in the deviation report, and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from cds_service.hooks.feedback import FeedbackEntry
from cds_service.rules.enrolment import study_of
from cds_service.security.caller import Caller
from cds_service.security.pseudonym import pseudonym

if TYPE_CHECKING:
    from cds_service.fhir.record import PatientRecord
    from cds_service.hooks.request import HookRequest

# Arm B warnings: when overridden, a potential protocol deviation for the sponsor.
DEVIATION_RULES = ("dex-after-cycle-2", "dex-extends-past-cycle-2")
UNKNOWN_RULE = "unknown"
KEY_STUDY_SUBJECT = "study-subject"
KEY_EHR_PATIENT = "ehr-patient"


def finding(card: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rule's finding a card carries in `extension.dexfree` (empty when it has none)."""
    extension = card.get("extension")
    found = extension.get("dexfree") if isinstance(extension, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _text(value: Any, limit: int) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _date(value: Any) -> date | None:
    """An ISO day (`2026-11-18`); anything else is not recorded rather than failing the row."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def study_subject_id(record: PatientRecord, study: str) -> str | None:
    """ResearchSubject.identifier of the record's subject in `study` (first one with a value), or None."""
    for subject in record.research_subjects:
        if not _in_study(record, subject, study):
            continue
        for identifier in subject.identifier or []:
            if identifier.value and identifier.value.strip():
                return identifier.value.strip()
    return None


def _in_study(record: PatientRecord, subject: Any, study: str) -> bool:
    """Does ResearchSubject.study name `study` (any identifier system, any case)?"""
    values, _ = study_of(subject, record)
    return study.strip().casefold() in {v.casefold() for v in values}


def card_rows(service_id: str, request: HookRequest, record: PatientRecord,
              cards: Sequence[Mapping[str, Any]], *, caller: Caller, salt: str,
              now: datetime) -> list[dict[str, Any]]:
    """One row per card returned by a call."""
    subjects: dict[str, str | None] = {}
    rows = []
    for card in cards:
        found = finding(card)
        study = _text(found.get("study"), 64)
        # A card names its study in its dexfree extension; one that does not is keyed by the EHR id.
        if study and study not in subjects:
            subjects[study] = study_subject_id(record, study)
        subject = subjects.get(study) if study else None
        rule = _text(found.get("rule"), 64) or UNKNOWN_RULE
        rows.append({
            "card_uuid": str(card["uuid"]),
            "service_id": service_id,
            "hook": request.hook,
            "hook_instance": request.hook_instance,
            "rule": rule,
            "indicator": str(card.get("indicator")),
            "study": study,
            "arm": _text(found.get("arm"), 16),
            "regimen": _text(found.get("regimen"), 32),
            "cycle": _int(found.get("cycle")),
            "cycle_day": _int(found.get("cycleDay")),
            "shown_at": now,
            "issuer": caller.issuer,
            "tenant": caller.tenant,
            "patient_key": pseudonym(subject if subject else request.patient_id, salt),
            "patient_key_source": KEY_STUDY_SUBJECT if subject else KEY_EHR_PATIENT,
            "study_subject_id": subject if subject and rule in DEVIATION_RULES else None,
            "order_date": _date(found.get("orderDate")),
            # Whose regimen the card was checked against: the call's site and the regimen's url|version.
            "site": _text(caller.site, 200),
            "regimen_canonical": _text(found.get("regimenCanonical"), 500),
        })
    return rows


def dedup_key(entry: FeedbackEntry) -> str:
    """Identity of a feedback entry: the same card, outcome, instant, suggestions and reason is one entry.

    The comment and the reason's display are left out: a client resending the same decision with a
    reworded display is still sending the same decision.
    """
    content = [entry.card, entry.outcome, entry.outcome_timestamp.astimezone(UTC).isoformat(),
               sorted(entry.accepted_suggestions), entry.override_system, entry.override_code]
    return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()


def feedback_row(service_id: str, entry: FeedbackEntry, caller: Caller, now: datetime) -> dict[str, Any]:
    """The row of one feedback entry (`card_known` is filled in by the store)."""
    return {
        "dedup_key": dedup_key(entry),
        "card_uuid": entry.card,
        "service_id": service_id,
        "outcome": entry.outcome,
        "outcome_at": entry.outcome_timestamp.astimezone(UTC),
        "accepted_suggestions": json.dumps(list(entry.accepted_suggestions)) if entry.accepted_suggestions
        else None,
        "override_system": entry.override_system,
        "override_code": entry.override_code,
        "override_display": entry.override_display,
        "user_comment": entry.user_comment,
        "received_at": now,
        "issuer": caller.issuer,
        "tenant": caller.tenant,
    }
