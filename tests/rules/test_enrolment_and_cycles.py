"""Enrolment (which study, arm, phase), dates in the patient's calendar, and the cycle clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.cycles import cycle_clock
from cds_service.rules.dates import age_on, local_date
from cds_service.rules.enrolment import enrolment
from tests.rules.scenario import C1D1, administration, care_plan, day_of, research_study, research_subject

PARIS = ZoneInfo("Europe/Paris")


def record(*resources):
    rec = PatientRecord(patient_id="pat-42")
    for raw in resources:
        resource = parse_resource(raw)
        kind = resource.get_resource_type()
        rec.referenced[f"{kind}/{resource.id}"] = resource
        attribute = {"ResearchSubject": "research_subjects", "CarePlan": "care_plans",
                     "MedicationAdministration": "medication_administrations",
                     "MedicationRequest": "medication_requests"}.get(kind)
        if attribute:
            getattr(rec, attribute).append(resource)
    return rec


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-10-26T23:15:00Z", date(2026, 10, 27)), ("2026-10-26T22:59:59Z", date(2026, 10, 26)),  # CET after DST
    ("2026-07-01T22:30:00Z", date(2026, 7, 2)), ("2026-07-01T21:30:00Z", date(2026, 7, 1)),  # CEST
    ("2026-10-26", date(2026, 10, 26)), ("2026-10", None), ("2026", None), (None, None),
    (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 29)),
])
def test_local_date(value, expected):
    assert local_date(value, PARIS) == expected


@pytest.mark.parametrize(("birth", "on", "age"), [
    ("1951-09-01", date(2026, 9, 1), 75), ("1951-09-02", date(2026, 9, 1), 74), (date(1951, 9, 1), date(2026, 8, 31), 74),
    ("1940", date(2026, 12, 31), 86), ("1940", date(2026, 6, 1), None), ("1951-03", date(2026, 4, 1), 75),
    ("1951-03", date(2026, 3, 15), None), (None, date(2026, 1, 1), None), ("garbage", date(2026, 1, 1), None),
])
def test_age_on(birth, on, age):
    assert age_on(birth, on) == age


def test_contained_study_is_read(knowledge):
    subject = research_subject(study="#s")
    subject["contained"] = [research_study(study_id="s")]
    found = enrolment(record(subject), knowledge, PARIS)
    assert found.arm.key == "B" and found.on_treatment and found.subject_identifier == "DXF-0042"


def test_logical_study_reference_by_identifier(knowledge):
    subject = research_subject()
    subject["study"] = {"identifier": {"system": "https://clinicaltrials.gov", "value": "NCT06561854"}}
    assert enrolment(record(subject), knowledge, PARIS).arm.key == "B"


def test_a_study_named_by_its_nct_number_as_id_is_recognised_unread(knowledge):
    found = enrolment(record(research_subject(study="ResearchStudy/nct06561854")), knowledge, PARIS)
    assert found is not None and found.arm.key == "B"
    assert enrolment(record(research_subject(study="ResearchStudy/NCT00000001")), knowledge, PARIS) is None


def test_unreadable_study_is_not_taken_for_this_one(knowledge):
    assert enrolment(record(research_subject(study="ResearchStudy/elsewhere")), knowledge, PARIS) is None


def test_an_enrolment_on_treatment_wins_over_an_older_withdrawn_one(knowledge):
    old = research_subject("A", status="withdrawn", subject_id="old", enrolled="2025-01-01")
    found = enrolment(record(old, research_subject(), research_study()), knowledge, PARIS)
    assert found.reference == "ResearchSubject/subj-1" and found.arm.key == "B"


def test_two_live_enrolments_in_different_arms_leave_the_arm_unknown(knowledge):
    other = research_subject("A", subject_id="subj-2")
    found = enrolment(record(research_subject(), other, research_study()), knowledge, PARIS)
    assert found.arm is None and "different arms" in found.problems[-1]


@pytest.mark.parametrize(("status", "phase"), [
    ("on-study", "on-treatment"), ("on-study-intervention", "on-treatment"), ("withdrawn", "ended"),
    ("off-study", "ended"), ("follow-up", "ended"), ("candidate", "screening"), ("pending-on-study", "screening"),
    ("something-new", "on-treatment"),
])
def test_phase_of_each_status(knowledge, status, phase):
    found = enrolment(record(research_subject(status=status), research_study()), knowledge, PARIS)
    assert found.phase == phase


def _clock(knowledge, *resources):
    rec = record(research_subject(), research_study(), *resources)
    return cycle_clock(rec, knowledge, enrolment(rec, knowledge, PARIS), PARIS)


def test_clock_from_care_plan(knowledge):
    clock = _clock(knowledge, care_plan())
    assert clock.regimen.key == "ICARIA" and clock.c1d1 == C1D1
    assert clock.position(day_of(2, 28)) == (2, 28) and clock.position(day_of(3, 1)) == (3, 1)
    assert clock.cycle_start(3) == date(2026, 10, 27)


def test_care_plan_of_the_other_arm_is_reported(knowledge):
    clock = _clock(knowledge, care_plan("ikema-arm-a"))
    assert clock.regimen.key == "IKEMA" and clock.regimen.arm == "B"
    assert "arm A version of IKEMA" in clock.problems[0]


def test_care_plans_naming_both_regimens_leave_it_unknown(knowledge):
    clock = _clock(knowledge, care_plan(), care_plan("ikema-arm-b", plan_id="cp-2"))
    assert clock.regimen is None and "more than one regimen" in clock.problems[0]


def test_revoked_care_plan_is_ignored(knowledge):
    clock = _clock(knowledge, care_plan(status="entered-in-error"))
    assert clock.c1d1 is None


def test_clock_from_isatuximab_with_stratum_from_carfilzomib(knowledge):
    clock = _clock(knowledge, administration("Sarclisa", day_of(1, 1), "isa-1"),
                   administration("carfilzomib", day_of(1, 1), "cfz-1"))
    assert clock.regimen.key == "IKEMA" and clock.c1d1 == C1D1
    assert "MedicationAdministration/isa-1" in clock.c1d1_how


def test_clock_without_stratum_keeps_both_regimens(knowledge):
    clock = _clock(knowledge, administration("isatuximab", day_of(1, 1), "isa-1"))
    assert clock.regimen is None and {r.key for r in clock.regimens} == {"ICARIA", "IKEMA"}
    assert clock.position(day_of(3, 1)) == (3, 1)


def test_isatuximab_a_day_late_is_no_doubt_but_a_week_late_is(knowledge):
    first = administration("isatuximab", C1D1, "isa-1")
    on_time = _clock(knowledge, care_plan(), first, administration("isatuximab", day_of(2, 16), "isa-2"))
    assert on_time.doubts == ()
    late = _clock(knowledge, care_plan(), first, administration("isatuximab", day_of(2, 8), "isa-3"))
    assert any("delayed" in doubt for doubt in late.doubts)
