"""What a card row and a feedback row hold: the finding, the patient key, the dedup key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.researchstudy import ResearchStudy
from fhir.resources.R4B.researchsubject import ResearchSubject

from cds_service.audit.rows import card_rows, dedup_key, feedback_row, finding, study_subject_id
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.feedback import FeedbackEntry
from cds_service.hooks.request import parse_hook_request
from cds_service.security.caller import ANONYMOUS
from cds_service.security.pseudonym import pseudonym
from tests.conftest import load_fixture

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def subject(study: dict, value: str | None = "DXF-0042") -> ResearchSubject:
    return ResearchSubject(**{"status": "on-study", "study": study, "individual": {"reference": "Patient/pat-1"},
                              **({"identifier": [{"value": value}]} if value else {})})


def record_with(*subjects: ResearchSubject, studies: tuple[ResearchStudy, ...] = ()) -> PatientRecord:
    record = PatientRecord(patient_id="pat-1", research_subjects=list(subjects))
    for study in studies:
        record.referenced[f"ResearchStudy/{study.id}"] = study
    return record


@pytest.mark.parametrize(("study_reference", "studies"), [
    ({"reference": "ResearchStudy/s1"},
     (ResearchStudy(id="s1", status="active", identifier=[{"value": "nct06561854"}]),)),
    ({"identifier": {"system": "https://clinicaltrials.gov", "value": "NCT06561854"}}, ()),
    ({"reference": "https://ctms.example/fhir/ResearchStudy/NCT06561854"}, ()),
])
def test_the_study_subject_is_found_however_the_study_is_referenced(study_reference, studies):
    assert study_subject_id(record_with(subject(study_reference), studies=studies), "NCT06561854") == "DXF-0042"


def test_a_subject_of_another_study_or_without_identifier_is_not_used():
    other = subject({"reference": "ResearchStudy/NCT00000001"}, "OTHER-1")
    no_id = subject({"reference": "ResearchStudy/NCT06561854"}, None)
    unresolved = subject({"reference": "ResearchStudy/s9"}, "X-1")
    assert study_subject_id(record_with(other, no_id, unresolved), "NCT06561854") is None


@pytest.mark.parametrize("card", [{}, {"extension": "x"}, {"extension": {"dexfree": ["rule"]}},
                                  {"extension": {"other": {"rule": "x"}}}])
def test_a_card_without_a_readable_finding_has_none(card):
    assert finding(card) == {}


def test_odd_finding_values_are_not_stored_as_such():
    request = parse_hook_request(load_fixture("requests/spec-order-sign.json"), "order-sign", "s")
    cards = [{"uuid": "u1", "indicator": "warning",
              "extension": {"dexfree": {"rule": 7, "arm": "", "cycle": True, "cycleDay": "3", "study": None}}}]
    (row,) = card_rows("s", request, record_with(), cards, caller=ANONYMOUS, salt="k", now=NOW)
    assert (row["rule"], row["arm"], row["cycle"], row["cycle_day"], row["study"]) == ("unknown", None, None,
                                                                                       None, None)
    assert row["patient_key"] == pseudonym("pat-1", "k") and (row["issuer"], row["tenant"]) == (None, None)


def entry(**changes) -> FeedbackEntry:
    base = {"card": "c1", "outcome": "overridden", "outcome_timestamp": datetime(2026, 11, 24, 10, tzinfo=UTC),
            "override_system": "https://x", "override_code": "premedication", "override_display": "Premed",
            "user_comment": "why"}
    return FeedbackEntry(**{**base, **changes})


def test_the_dedup_key_is_the_decision_not_its_wording():
    from datetime import timedelta, timezone

    same_instant = datetime(2026, 11, 24, 11, tzinfo=timezone(timedelta(hours=1)))
    assert dedup_key(entry()) == dedup_key(entry(user_comment="other words", override_display="Premedication",
                                                 outcome_timestamp=same_instant))
    for change in ({"card": "c2"}, {"outcome": "accepted"}, {"override_code": "other"},
                   {"outcome_timestamp": datetime(2026, 11, 24, 10, 1, tzinfo=UTC)},
                   {"accepted_suggestions": ("s1",)}):
        assert dedup_key(entry(**change)) != dedup_key(entry()), change


def test_feedback_row_keeps_the_instant_in_utc_and_the_suggestions_as_json():
    row = feedback_row("s", entry(accepted_suggestions=("a", "b"), outcome="accepted"), ANONYMOUS, NOW)
    assert row["outcome_at"] == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert row["accepted_suggestions"] == '["a", "b"]'
