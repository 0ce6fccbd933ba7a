"""The dexamethasone rules called directly: every path of rules/dexamethasone.py, by class of record.

Each record is a hook call built with tests/rules/scenario.py (arm B, enrolled 2026-08-20, ICARIA from
2026-09-01 unless told otherwise), assembled into a PatientRecord the way the service does (complete
prefetch, no FHIR server), then given to `evaluate_orders` / `situation` on the suite's today
(2026-11-24, Europe/Paris, cycle 4 day 1). The findings' fields the cards are built from are asserted, not
only the rule. A path the service cannot reach from a record (a clock with no candidate regimen) is
exercised on the private helper with a hand-built clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.assemble import assemble_record
from cds_service.hooks.request import parse_hook_request
from cds_service.rules import dexamethasone as dex
from cds_service.rules.cycles import INFUSION_SLACK_DAYS, NO_START
from cds_service.rules.dexamethasone import (
    DOSE_TOLERANCE_MG,
    NOT_ORDERED,
    DexFinding,
    candidate_orders,
    evaluate_orders,
    last_dex_day,
    situation,
)
from cds_service.rules.orders import order_facts
from tests.rules.scenario import (
    BROKEN_NOTE,
    BROKEN_SUBJECTS,
    C1D1,
    RXNORM,
    administration,
    call,
    care_plan,
    day_of,
    dex_order,
    medication_request,
    patient,
    research_study,
    research_subject,
)

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 24)
PARTS = ("patient", "medicationRequests", "medicationAdministrations", "researchSubjects", "carePlans")
ARM_A = "dexamethasone arm"
ENROLLED = date(2026, 8, 20)
ICARIA_DAYS = (1, 8, 15, 22)
IKEMA_DAYS = (1, 2, 8, 9, 15, 16, 22, 23)
NOT_READ = "the ordered medication could not be read"


def record_of(hook: str = "order-sign", orders: tuple[dict, ...] = (), **kw: Any):
    """The PatientRecord the service builds for this call (complete prefetch, nothing read from a server)."""
    body = call(hook, tuple(orders), **kw)
    return assemble_record(parse_hook_request(body, hook, "dex-free-test"), PARTS)


def findings(knowledge, *orders: dict, hook: str = "order-sign", **kw: Any) -> list[DexFinding]:
    record = record_of(hook, orders, **kw)
    selections = record.selections if hook == "order-select" else ()
    return evaluate_orders(record, knowledge, TODAY, PARIS, selections)


def only(found: list[DexFinding]) -> DexFinding:
    assert len(found) == 1, [(f.rule, f.missing) for f in found]
    return found[0]


def arm_a(**kw: Any) -> dict[str, Any]:
    return {"subjects": (research_subject(ARM_A),), "plans": (care_plan("icaria-arm-a"),), **kw}


def isa(cycle: int, day: int, *, shift: int = 0, c1d1: date = C1D1) -> dict:
    on = day_of(cycle, day, c1d1) + timedelta(days=shift)
    return administration("isatuximab", on, f"isa-{on:%m%d}")


STANDARD = ((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 15))
POMALIDOMIDE = administration("pomalidomide", C1D1, "pom-1")


def course(*days: tuple[int, int], c1d1: date = C1D1) -> tuple[dict, ...]:
    return tuple(isa(c, d, c1d1=c1d1) for c, d in days)


def daily(start: date, days: int | None, **kw: Any) -> dict:
    return dex_order(start, days=days, frequency=(1, 1, "d"), **kw)


# --- not enrolled, not on treatment, the study unreadable ----------------------------------------------


@pytest.mark.parametrize("kw", [
    {"subjects": (), "studies": ()},
    {"studies": (research_study(nct="NCT01234567"),)},  # another trial's ResearchSubject
], ids=["no-research-subject", "another-study"])
def test_not_enrolled_in_the_study_gives_nothing(knowledge, kw):
    assert findings(knowledge, dex_order(day_of(3, 1)), **kw) == []
    assert situation(record_of(**kw), knowledge, TODAY, PARIS) is None


@pytest.mark.parametrize("arm", ["dexamethasone-free arm", ARM_A, None])
def test_study_unreadable_cannot_verify_each_systemic_dex_order(knowledge, arm):
    """A ResearchSubject whose study cannot be read may be this study's: whatever arm it names (or none),
    each systemic dexamethasone order gets could-not-verify naming the subject; others get nothing."""
    subject = research_subject(arm, study="ResearchStudy/unknown-study")
    orders = (
        dex_order(day_of(1, 8), order_id="dex-1"),
        dex_order(day_of(3, 1), order_id="dex-2"),
        dex_order(day_of(3, 1), order_id="eye", route="eye drops"),
        medication_request("paracetamol", day_of(3, 1), "para", status="draft"),
    )
    found = findings(knowledge, *orders, subjects=(subject,), studies=())
    assert [f.order_ref for f in found] == ["MedicationRequest/dex-1", "MedicationRequest/dex-2"]
    for f in found:
        assert (f.rule, f.enrolled, f.clock, f.cycle) == ("cannot-verify", None, None, None)
        assert f.missing == ("the study of a trial enrolment could not be read",)
        assert f.notes == ("the study named by a trial enrolment (ResearchSubject/subj-1) could not be read: it may be NCT06561854",)
        assert f.evidence == (f.order_ref, "ResearchSubject/subj-1")
        assert f.facts.reference == f.order_ref and f.arm is None and f.regimen is None


def test_study_unreadable_beside_a_readable_other_study_names_only_the_unreadable(knowledge):
    subjects = (research_subject(study="ResearchStudy/unknown-study", subject_id="subj-x"),
                research_subject(study="ResearchStudy/rs-other", subject_id="subj-o"))
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=subjects,
                          studies=(research_study(nct="NCT01234567", study_id="rs-other"),)))
    assert found.notes == ("the study named by a trial enrolment (ResearchSubject/subj-x) could not be read: it may be NCT06561854",)
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-x")


# Ways an EHR writes a ResearchSubject that is not valid FHIR R4: each is left out of the record (with a
# warning in the log), and may be this study's enrolment.


@pytest.mark.parametrize("change", BROKEN_SUBJECTS.values(), ids=BROKEN_SUBJECTS.keys())
def test_an_enrolment_that_is_not_valid_fhir_cannot_verify_each_systemic_dex_order(knowledge, change):
    """An arm B patient whose ResearchSubject does not validate: no readable enrolment, but never silence."""
    orders = (
        dex_order(day_of(3, 1), order_id="dex-1"),
        dex_order(day_of(3, 1), order_id="eye", route="eye drops"),
        medication_request("paracetamol", day_of(3, 1), "para", status="draft"),
    )
    record = record_of("order-sign", orders, subjects=({**research_subject(), **change},))
    assert record.research_subjects == [] and [s.resource_type for s in record.skipped] == ["ResearchSubject"]
    found = only(evaluate_orders(record, knowledge, TODAY, PARIS))
    assert (found.rule, found.order_ref, found.enrolled, found.clock) == (
        "cannot-verify", "MedicationRequest/dex-1", None, None)
    assert found.missing == ("a trial enrolment could not be read",)
    assert found.notes == (BROKEN_NOTE,)
    assert found.evidence == ("MedicationRequest/dex-1",)


def test_two_broken_enrolments_beside_an_unreadable_study_are_all_said(knowledge):
    broken = [{**research_subject(subject_id=f"subj-{i}"), **BROKEN_SUBJECTS["enrolment date in words"]}
              for i in (1, 2)]
    unknown = research_subject(study="ResearchStudy/unknown-study", subject_id="subj-x")
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=(*broken, unknown), studies=()))
    assert found.missing == ("the study of a trial enrolment could not be read",
                             "a trial enrolment could not be read")
    assert found.notes == (
        "the study named by a trial enrolment (ResearchSubject/subj-x) could not be read: it may be NCT06561854",
        "2 ResearchSubjects of the patient are not valid FHIR R4: it may be the enrolment in NCT06561854")
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-x")


def test_another_patients_enrolment_is_left_out_without_doubt(knowledge):
    """Left out on purpose, not unreadable: it says nothing about this patient."""
    other = research_subject(individual={"reference": "Patient/someone-else"})
    record = record_of("order-sign", (dex_order(day_of(3, 1)),), subjects=(other,))
    assert [s.unreadable for s in record.skipped] == [False]
    assert evaluate_orders(record, knowledge, TODAY, PARIS) == []


def test_a_broken_enrolment_beside_a_readable_one_leaves_the_readable_one_deciding(knowledge):
    broken = {**research_subject(subject_id="subj-2"), **BROKEN_SUBJECTS["arm as an object"]}
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=(research_subject(), broken)))
    assert (found.rule, found.cycle) == ("dex-after-cycle-2", 3)


@pytest.mark.parametrize("status", ["off-study", "withdrawn", "follow-up", "ineligible", "not-registered",
                                    "candidate", "eligible", "screening", "pending-on-study"])
def test_not_on_study_treatment_gives_nothing(knowledge, status):
    subjects = (research_subject(status=status),)
    assert findings(knowledge, dex_order(day_of(3, 1)), subjects=subjects) == []
    bad = dex_order(day_of(3, 1), order_id="bad", status=12)
    assert findings(knowledge, bad, subjects=subjects) == []  # nor for an unreadable order


@pytest.mark.parametrize("status", ["on-study", "on-study-intervention", "on-study-observation"])
def test_on_study_statuses_warn(knowledge, status):
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=(research_subject(status=status),)))
    assert found.rule == "dex-after-cycle-2"


# --- the arm B warnings --------------------------------------------------------------------------------


def test_after_cycle_2_on_cycle_3_day_1(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 1))))
    assert (found.rule, found.order_ref, found.arm, found.regimen) == (
        "dex-after-cycle-2", "MedicationRequest/dex-1", "B", "ICARIA")
    assert (found.cycle, found.cycle_day, found.end_cycle) == (3, 1, None)
    assert (found.stop_cycle, found.stop_date, found.infusion_day) == (3, day_of(3, 1), True)
    assert last_dex_day(found) == day_of(2, 28)
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-1", "CarePlan/cp-1")
    assert found.missing == () and found.notes == ()


@pytest.mark.parametrize(("cycle", "day", "infusion"), [(3, 2, False), (3, 15, True), (4, 1, True),
                                                        (7, 28, False)])
def test_after_cycle_2_every_later_cycle_day(knowledge, cycle, day, infusion):
    found = only(findings(knowledge, dex_order(day_of(cycle, day))))
    assert (found.rule, found.cycle, found.cycle_day, found.infusion_day) == (
        "dex-after-cycle-2", cycle, day, infusion)
    assert (found.stop_cycle, found.stop_date) == (3, day_of(3, 1))


def test_last_day_of_cycle_2_is_not_after_cycle_2(knowledge):
    """Cycle 2 day 28 still gives dexamethasone (no arm B warning), but not on that day: a dose card."""
    found = only(findings(knowledge, dex_order(day_of(2, 28))))
    assert (found.rule, found.cycle, found.cycle_day, found.infusion_day) == ("dex-dose-mismatch", 2, 28, False)
    assert found.notes == ("doses on cycle days 28, outside the regimen's days",)
    assert found.expected.value == 40 and found.expected_days == ICARIA_DAYS and found.age == 66
    assert only(findings(knowledge, dex_order(day_of(3, 1)))).rule == "dex-after-cycle-2"


@pytest.mark.parametrize(("days", "end_cycle", "off"), [
    (8, 3, "23, 24, 25, 26, 27, 28"),  # C2D22 → C3D1
    (36, 4, "23, 24, 25, 26, 27, 28"),  # C2D22 → C4D1
])
def test_extends_past_cycle_2_with_its_end_cycle(knowledge, days, end_cycle, off):
    found = findings(knowledge, daily(day_of(2, 22), days))
    assert [f.rule for f in found] == ["dex-extends-past-cycle-2", "dex-dose-mismatch"]
    warn, dose = found
    assert (warn.cycle, warn.cycle_day, warn.end_cycle, warn.stop_cycle, warn.stop_date) == (
        2, 22, end_cycle, 3, day_of(3, 1))
    assert warn.infusion_day is False and warn.notes == ()
    # the days in cycle 3 are the warning's; the dose card names only the cycle 2 days off the regimen
    assert dose.notes == (f"doses on cycle days {off}, outside the regimen's days",)


def test_a_course_ending_on_cycle_2_day_28_does_not_extend(knowledge):
    found = findings(knowledge, daily(day_of(2, 22), 7))
    assert [f.rule for f in found] == ["dex-dose-mismatch"]


def test_weekly_on_the_regimen_days_of_cycle_2_gives_nothing(knowledge):
    order = dex_order(day_of(2, 1), days=22, frequency=(1, 1, "wk"))
    assert findings(knowledge, order) == []


def test_weekly_running_into_cycle_3_extends(knowledge):
    found = only(findings(knowledge, dex_order(day_of(2, 1), days=29, frequency=(1, 1, "wk"))))
    assert (found.rule, found.cycle, found.cycle_day, found.end_cycle) == ("dex-extends-past-cycle-2", 2, 1, 3)
    assert found.infusion_day is True


def test_open_ended_from_cycle_2_extends_with_no_end_cycle(knowledge):
    found = findings(knowledge, daily(day_of(2, 22), None))
    assert found[0].rule == "dex-extends-past-cycle-2"
    assert (found[0].cycle, found[0].cycle_day, found[0].end_cycle, found[0].stop_cycle) == (2, 22, None, 3)
    assert found[0].facts.open_ended and found[0].stop_date == day_of(3, 1)
    assert [f.rule for f in found[1:]] == []  # an open-ended order has no days to check


def test_open_ended_from_cycle_1_day_1_extends(knowledge):
    found = only(findings(knowledge, daily(day_of(1, 1), None)))
    assert (found.rule, found.cycle, found.cycle_day, found.end_cycle, found.infusion_day) == (
        "dex-extends-past-cycle-2", 1, 1, None, True)


# --- an order begun before cycle 1 day 1 --------------------------------------------------------------


@pytest.mark.parametrize(("days", "end_cycle"), [(None, None), (20 + 56, 3), (5 + 3 * 28 + 1, 4)])
def test_begun_before_c1d1_running_into_cycle_3_extends(knowledge, days, end_cycle):
    found = only(findings(knowledge, daily(C1D1 - timedelta(days=5), days)))
    assert (found.rule, found.cycle, found.cycle_day, found.end_cycle) == (
        "dex-extends-past-cycle-2", None, None, end_cycle)
    assert (found.stop_cycle, found.stop_date, found.infusion_day) == (3, day_of(3, 1), False)
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-1", "CarePlan/cp-1")


@pytest.mark.parametrize("last", [C1D1 - timedelta(days=1), C1D1, day_of(1, 2), day_of(2, 28)])
def test_begun_before_c1d1_ending_by_cycle_2_gives_nothing(knowledge, last):
    """Before cycle 1 day 1 the arm rules do not apply; within cycles 1–2 there is no dose card either."""
    start = C1D1 - timedelta(days=5)
    assert findings(knowledge, daily(start, (last - start).days + 1)) == []


def test_begun_before_c1d1_in_arm_a_gives_nothing(knowledge):
    assert findings(knowledge, daily(C1D1 - timedelta(days=5), None), **arm_a()) == []


def test_begun_before_c1d1_with_a_count_and_no_spacing_cannot_verify(knowledge):
    order = dex_order(C1D1 - timedelta(days=5), days=None, frequency=None)
    order["dosageInstruction"][0]["timing"]["repeat"]["count"] = 60
    found = only(findings(knowledge, order))
    assert (found.rule, found.cycle, found.missing) == ("cannot-verify", None, ("the order's last day is not stated",))
    assert found.notes == ("it gives a number of doses without saying how often",)
    assert found.stop_cycle == 3


# --- no card -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("day", [day_of(1, 1), day_of(1, 8), day_of(1, 22), day_of(2, 1), day_of(2, 22)])
def test_the_regimen_dose_on_a_regimen_day_gives_nothing(knowledge, day):
    assert findings(knowledge, dex_order(day)) == []


@pytest.mark.parametrize("route", ["eye drops", "topical", "intra-articular"])
def test_local_routes_give_nothing(knowledge, route):
    order = dex_order(day_of(3, 1), route=route)
    assert order_facts_route(knowledge, order) == "local"
    assert findings(knowledge, order) == []


def order_facts_route(knowledge, raw):
    record = record_of("order-sign", (raw,))
    return order_facts(record.draft_orders[0], record, knowledge, TODAY, PARIS).route


@pytest.mark.parametrize("status", sorted(NOT_ORDERED))
def test_statuses_that_are_not_ordering_give_nothing(knowledge, status):
    assert findings(knowledge, dex_order(day_of(3, 1), status=status)) == []


def test_not_ordered_statuses_are_exactly_these():
    assert frozenset({"cancelled", "entered-in-error", "stopped", "completed"}) == NOT_ORDERED


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
@pytest.mark.parametrize("status", ["active", "draft", "on-hold", "unknown"])
def test_signed_or_held_orders_still_warn(knowledge, status, hook):
    """order-sign may re-fire with the order already signed (`active`): it is still being ordered."""
    found = only(findings(knowledge, dex_order(day_of(3, 1), status=status), hook=hook))
    assert (found.rule, found.cycle, found.cycle_day) == ("dex-after-cycle-2", 3, 1)


def test_do_not_perform_gives_nothing(knowledge):
    assert findings(knowledge, dex_order(day_of(3, 1), doNotPerform=True)) == []
    assert only(findings(knowledge, dex_order(day_of(3, 1), doNotPerform=False))).rule == "dex-after-cycle-2"


def test_other_drugs_and_requests_give_nothing(knowledge):
    other = medication_request("paracetamol", day_of(3, 1), "para", status="draft")
    service = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
               "subject": {"reference": "Patient/pat-42"}, "code": {"text": "dexamethasone"}}
    assert findings(knowledge, other, service) == []


def test_arm_a_after_cycle_2_gives_nothing(knowledge):
    for day in (day_of(3, 1), day_of(9, 22)):
        assert findings(knowledge, dex_order(day), **arm_a()) == []
    assert findings(knowledge, daily(day_of(2, 22), None, dose=40), **arm_a()) == []


def test_arm_a_dose_mismatch_after_cycle_2(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 8), dose=20), **arm_a()))
    assert (found.rule, found.arm, found.cycle, found.cycle_day, found.stop_cycle, found.stop_date) == (
        "dex-dose-mismatch", "A", 3, 8, None, None)
    assert found.expected.value == 40 and found.notes == () and last_dex_day(found) is None


# --- cannot verify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    research_subject("arm C"),
    research_subject(None),
], ids=["not-an-arm", "no-arm"])
def test_arm_unknown(knowledge, subject):
    found = only(findings(knowledge, dex_order(day_of(1, 8)), subjects=(subject,)))
    assert (found.rule, found.missing, found.clock, found.arm) == ("cannot-verify", ("arm unknown",), None, None)
    assert found.notes == found.enrolled.problems and found.notes
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-1")
    place = situation(record_of(subjects=(subject,)), knowledge, TODAY, PARIS)
    assert (place.clock, place.cycle, place.cycle_day, place.stop_cycle, place.stop_date) == (None,) * 5


def test_two_live_enrolments_in_different_arms_are_arm_unknown(knowledge):
    subjects = (research_subject(), research_subject(ARM_A, subject_id="subj-2", enrolled="2026-08-21"))
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=subjects))
    assert found.missing == ("arm unknown",)
    assert "two ResearchSubjects on study treatment name different arms" in found.notes[-1]


def test_cycle_1_day_1_unknown(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 1)), plans=()))
    assert (found.rule, found.missing, found.notes) == ("cannot-verify", ("cycle 1 day 1 unknown",), (NO_START,))
    assert found.cycle is None and found.clock.c1d1 is None
    assert situation(record_of(plans=()), knowledge, TODAY, PARIS).cycle is None


def test_cycle_1_day_1_unknown_for_an_order_before_enrolment_too(knowledge):
    found = only(findings(knowledge, dex_order(date(2026, 7, 1)), plans=()))
    assert found.missing == ("cycle 1 day 1 unknown",)


def delayed_cycle_3(late: int = 7) -> dict[str, Any]:
    """Isatuximab on the calendar up to cycle 2 day 15, then cycle 3 day 1 given `late` days late."""
    return {"administrations": (*course(*STANDARD), isa(3, 1, shift=late), POMALIDOMIDE)}


def test_cycle_of_the_first_day_unclear_in_a_delayed_cycle(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 3)), **delayed_cycle_3()))
    assert (found.rule, found.missing, found.cycle) == (
        "cannot-verify", ("cycle of the order's first day unclear",), None)
    assert found.notes == (f"{day_of(3, 3).isoformat()} is cycle 3 day 3 by the calendar from cycle 1 day 1 "
                           f"(2026-09-01), but cycle 2 day 31 counting from the isatuximab given (cycle 2 "
                           f"day 1 on {day_of(2, 1).isoformat()})",)


def test_after_the_delayed_day_1_the_warning_is_back(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 8)), **delayed_cycle_3()))
    assert (found.rule, found.cycle, found.cycle_day, found.infusion_day) == ("dex-after-cycle-2", 3, 1, True)
    assert found.stop_date == day_of(3, 8) and last_dex_day(found) == day_of(3, 7)
    assert any("may have been delayed" in n for n in found.notes)


def test_cycle_of_the_last_day_unclear_in_a_delayed_cycle(knowledge):
    found, dose = findings(knowledge, daily(day_of(2, 22), 10, dose=40), **delayed_cycle_3())
    # C2D22 → C3D3: the last day falls where the calendar says cycle 3 and the infusions cycle 2
    assert dose.rule == "dex-dose-mismatch"  # cycle 2 days 23–28 are not regimen days
    assert (found.rule, found.missing, found.cycle, found.cycle_day) == (
        "cannot-verify", ("cycle of the order's last day unclear",), 2, 22)
    assert found.notes[-1].startswith(f"{day_of(3, 3).isoformat()} is cycle 3 day 3 by the calendar")
    assert any("may have been delayed" in n for n in found.notes[:-1])


def test_last_day_stale_without_an_enrolment_date(knowledge):
    """Without an enrolment date or plan, dates long after the last isatuximab have no cycle."""
    subject = research_subject()
    del subject["period"]
    given = (*course(*STANDARD), POMALIDOMIDE)
    found, dose = findings(knowledge, daily(day_of(2, 22), 90), subjects=(subject,), plans=(),
                           administrations=given)
    assert dose.rule == "dex-dose-mismatch"
    assert (found.rule, found.missing) == ("cannot-verify", ("cycle of the order's last day unclear",))
    assert "may not be in the study course" in found.notes[-1]


def test_count_without_spacing_cannot_verify_its_last_day(knowledge):
    order = dex_order(day_of(2, 22), days=None, frequency=None)
    order["dosageInstruction"][0]["timing"]["repeat"]["count"] = 4
    found = findings(knowledge, order)
    assert found[0].rule == "cannot-verify" and found[0].facts.end_unknown
    assert (found[0].missing, found[0].notes) == (
        ("the order's last day is not stated",), ("it gives a number of doses without saying how often",))
    assert (found[0].cycle, found[0].cycle_day, found[0].stop_cycle, found[0].end_cycle) == (2, 22, 3, None)
    assert [f.rule for f in found[1:]] == []  # day 22 is a regimen day, 40 mg the dose


def test_count_without_spacing_in_arm_a_checks_the_dose_only(knowledge):
    order = dex_order(day_of(3, 22), days=None, frequency=None)
    order["dosageInstruction"][0]["timing"]["repeat"]["count"] = 4
    assert findings(knowledge, order, **arm_a()) == []


@pytest.mark.parametrize("medication", [
    {"medicationReference": {"reference": "Medication/nowhere"}},
    {"medicationReference": {"reference": "Medication/nowhere", "display": "comprimé 4 mg"}},
], ids=["reference", "reference-with-display"])
@pytest.mark.parametrize("subject", [research_subject(), research_subject("arm C")], ids=["arm-B", "arm-unknown"])
def test_medication_unreadable_arm_b_or_unknown_cannot_verify(knowledge, medication, subject):
    order = dex_order(day_of(3, 1), medication=medication)
    found = only(findings(knowledge, order, subjects=(subject,)))
    assert (found.rule, found.order_ref, found.missing) == ("cannot-verify", "MedicationRequest/dex-1", (NOT_READ,))
    assert found.notes == ("the medication of MedicationRequest/dex-1 could not be read",)
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-1")
    assert found.facts is None and found.cycle is None
    assert (found.clock is None) == (found.arm is None)


def test_medication_unreadable_in_arm_a_gives_nothing(knowledge):
    order = dex_order(day_of(3, 1), medication={"medicationReference": {"reference": "Medication/nowhere"}})
    assert findings(knowledge, order, **arm_a()) == []


def test_medication_reference_resolved_or_named_is_read(knowledge):
    named = dex_order(day_of(3, 1), medication={"medicationReference": {"reference": "Medication/nowhere",
                                                                        "display": "dexamethasone 4 mg"}})
    assert only(findings(knowledge, named)).rule == "dex-after-cycle-2"
    med = {"resourceType": "Medication", "id": "med-para", "code": {"text": "paracetamol"}}
    other = dex_order(day_of(3, 1), medication={"medicationReference": {"reference": "Medication/med-para"}})
    assert findings(knowledge, other, draft_extra=(med,)) == []


@pytest.mark.parametrize("coding", [
    {"text": "Dexamethasone 4 mg tablet"},
    {"coding": [{"system": RXNORM, "code": "3264"}]},
], ids=["named", "coded-only"])
def test_an_unreadable_draft_naming_dexamethasone_cannot_verify(knowledge, coding):
    bad = dex_order(day_of(1, 8), order_id="bad", medication={"medicationCodeableConcept": coding}, status=12)
    good = dex_order(day_of(1, 8), order_id="dex-ok")
    found = findings(knowledge, bad, good)
    assert len(found) == 1
    f = found[0]
    assert (f.rule, f.order_ref, f.missing) == ("cannot-verify", "an unreadable draft order",
                                                ("a dexamethasone order could not be read",))
    assert f.notes == ("a draft order naming dexamethasone is not valid FHIR R4",)
    assert f.evidence == ("ResearchSubject/subj-1",) and f.enrolled.arm.key == "B"


def test_an_unreadable_draft_of_another_drug_gives_nothing(knowledge):
    bad = dex_order(day_of(3, 1), order_id="bad", status=12,
                    medication={"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "161"}],
                                                              "text": "paracetamol"}})
    assert findings(knowledge, bad) == []


def test_an_unreadable_dexamethasone_draft_in_arm_a_cannot_verify(knowledge):
    bad = dex_order(day_of(3, 1), order_id="bad", status=12)
    assert only(findings(knowledge, bad, **arm_a())).missing == ("a dexamethasone order could not be read",)


# --- the dose ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dose", "differs"), [
    (40 + DOSE_TOLERANCE_MG, False), (40 - DOSE_TOLERANCE_MG, False), (40, False),
    (40.51, True), (39.49, True), (41, True), (20, True),
])
def test_dose_tolerance_both_sides(knowledge, dose, differs):
    found = findings(knowledge, dex_order(day_of(1, 8), dose=dose))
    assert [f.rule for f in found] == (["dex-dose-mismatch"] if differs else [])
    if differs:
        f = found[0]
        assert (f.cycle, f.cycle_day, f.expected.value, f.expected.unit, f.expected_days, f.age) == (
            1, 8, 40, "mg", ICARIA_DAYS, 66)
        assert f.notes == () and f.infusion_day is True and f.facts.dose_mg == pytest.approx(dose)


def test_dose_tolerance_is_half_a_milligram():
    assert DOSE_TOLERANCE_MG == 0.5


def test_the_dose_in_other_mass_units(knowledge):
    assert findings(knowledge, dex_order(day_of(1, 8), dose=0.04, unit="g")) == []
    assert only(findings(knowledge, dex_order(day_of(1, 8), dose=0.02, unit="g"))).rule == "dex-dose-mismatch"


@pytest.mark.parametrize(("change", "problem"), [
    ({"dose": None}, "no structured dose"),
    ({"dose": 2, "unit": "mL"}, "not a mass"),
])
def test_dose_not_readable(knowledge, change, problem):
    found = only(findings(knowledge, dex_order(day_of(2, 8), **change)))
    assert (found.rule, found.missing, found.cycle, found.cycle_day) == ("cannot-verify", ("dose not readable",), 2, 8)
    assert found.expected.value == 40 and found.expected_days == ICARIA_DAYS and found.age == 66
    assert len(found.notes) == 1 and problem in found.notes[0] and found.infusion_day is False


def test_dose_not_readable_after_cycle_2_is_still_the_arm_b_warning(knowledge):
    found = only(findings(knowledge, dex_order(day_of(3, 1), dose=None)))
    assert found.rule == "dex-after-cycle-2"


@pytest.mark.parametrize(("birth", "age", "expected", "card_for"), [
    ("1951-09-09", 74, 40, 20),  # the day before the 75th birthday: 40 mg
    ("1951-09-08", 75, 20, 40),  # the 75th birthday: 20 mg
    ("1940-01-01", 86, 20, 40),
])
def test_icaria_dose_by_age_at_the_75th_birthday(knowledge, birth, age, expected, card_for):
    day = day_of(1, 8)  # 2026-09-08
    kw = {"patient_resource": patient(birth)}
    assert findings(knowledge, dex_order(day, dose=expected), **kw) == []
    found = only(findings(knowledge, dex_order(day, dose=card_for), **kw))
    assert (found.rule, found.age, found.expected.value, found.expected.age_low is None) == (
        "dex-dose-mismatch", age, expected, expected == 40)


def test_the_age_is_taken_on_the_orders_first_day(knowledge):
    """Born 1951-09-20: 74 on cycle 1 day 15 (2026-09-15), 75 on cycle 1 day 22 (2026-09-22)."""
    kw = {"patient_resource": patient("1951-09-20")}
    assert findings(knowledge, dex_order(day_of(1, 15), dose=40), **kw) == []
    assert findings(knowledge, dex_order(day_of(1, 22), dose=20), **kw) == []


def test_age_unknown_when_the_dose_depends_on_it(knowledge):
    found = only(findings(knowledge, dex_order(day_of(1, 8)), patient_resource=patient(None)))
    assert (found.rule, found.missing, found.age, found.expected) == (
        "cannot-verify", ("dose not checked, age unknown",), None, None)
    assert found.notes == ("the patient's age is unknown and the regimen's dose depends on it",)
    assert (found.cycle, found.cycle_day, found.stop_cycle, found.infusion_day) == (1, 8, 3, True)


def test_age_unknown_does_not_matter_for_ikema(knowledge):
    kw = {"patient_resource": patient(None), "plans": (care_plan("ikema-arm-b"),)}
    assert findings(knowledge, dex_order(day_of(1, 2), dose=20), **kw) == []
    found = only(findings(knowledge, dex_order(day_of(1, 2), dose=40), **kw))
    assert (found.rule, found.age, found.expected.value, found.expected_days, found.regimen) == (
        "dex-dose-mismatch", None, 20, IKEMA_DAYS, "IKEMA")


@pytest.mark.parametrize("birth", ["1960-05-10", None])
def test_regimen_unknown_doses_differ_between_icaria_and_ikema(knowledge, birth):
    """No CarePlan and no stratum drug: both regimens of the arm are tried; their doses differ."""
    kw = {"plans": (), "administrations": course(*STANDARD), "patient_resource": patient(birth)}
    found = only(findings(knowledge, dex_order(day_of(1, 8)), **kw))
    short, why = (("regimen unknown", "the regimens possible for this patient give different doses") if birth
                  else ("age unknown", "the patient's age is unknown and the regimen's dose depends on it"))
    assert (found.rule, found.missing, found.notes) == ("cannot-verify", (f"dose not checked, {short}",), (why,))
    assert (found.cycle, found.cycle_day, found.regimen, found.stop_cycle) == (1, 8, None, 3)
    assert found.age == (66 if birth else None) and found.expected is None
    # the arm B warning needs no regimen: both stop dexamethasone at cycle 3
    late = only(findings(knowledge, dex_order(day_of(3, 1)), **kw))
    assert (late.rule, late.cycle, late.stop_date) == ("dex-after-cycle-2", 3, day_of(3, 1))


def test_stratum_drug_tells_the_regimen(knowledge):
    kw = {"plans": (), "administrations": (*course(*STANDARD), POMALIDOMIDE)}
    assert findings(knowledge, dex_order(day_of(1, 8)), **kw) == []
    assert only(findings(knowledge, dex_order(day_of(1, 8), dose=20), **kw)).regimen == "ICARIA"


@pytest.mark.parametrize(("order", "off"), [
    (lambda: daily(day_of(2, 1), 3), "2, 3"),
    (lambda: dex_order(day_of(1, 9)), "9"),
    (lambda: dex_order(day_of(1, 1), days=15, frequency=(1, 1, "wk")), None),
    (lambda: dex_order(day_of(1, 1), days=22, frequency=(1, 2, "d")), "3, 5, 7, 9, 11, 13, 17, 19, 21"),
])
def test_days_off_the_regimen(knowledge, order, off):
    found = findings(knowledge, order())
    if off is None:
        assert found == []
    else:
        assert only(found).rule == "dex-dose-mismatch"
        assert found[0].notes == (f"doses on cycle days {off}, outside the regimen's days",)


def test_an_order_without_timing_is_a_one_off_on_its_date(knowledge):
    order = dex_order(day_of(2, 3), authoredOn=day_of(2, 3).isoformat())
    del order["dosageInstruction"][0]["timing"]
    found = only(findings(knowledge, order))
    assert (found.rule, found.cycle, found.cycle_day) == ("dex-dose-mismatch", 2, 3)
    assert found.notes == ("doses on cycle days 3, outside the regimen's days",)
    order["authoredOn"] = day_of(2, 8).isoformat()
    assert findings(knowledge, order) == []


def test_an_open_ended_order_in_arm_a_has_no_days_to_check(knowledge):
    assert findings(knowledge, daily(day_of(3, 3), None), **arm_a()) == []


# --- infusion days, the infusion slack and the enrolment day --------------------------------------------


@pytest.mark.parametrize(("cycle", "day", "infusion"), [
    (1, 8, True), (1, 9, False), (2, 8, False), (2, 15, True), (2, 14, False)])
def test_infusion_day_is_an_isatuximab_day_of_the_regimen(knowledge, cycle, day, infusion):
    found = only(findings(knowledge, dex_order(day_of(cycle, day), dose=30)))
    assert (found.cycle, found.cycle_day, found.infusion_day) == (cycle, day, infusion)


@pytest.mark.parametrize(("shift", "c1d1"), [
    (-INFUSION_SLACK_DAYS, C1D1),  # first isatuximab 2 days before the plan: the plan's date holds
    (INFUSION_SLACK_DAYS, C1D1),  # 2 days after: still the plan's date
    (-INFUSION_SLACK_DAYS - 1, C1D1 - timedelta(days=3)),  # 3 days before: what was given decides
])
def test_infusion_slack_between_the_plan_and_the_first_isatuximab(knowledge, shift, c1d1):
    given = (isa(1, 1, shift=shift), isa(1, 8, shift=shift), POMALIDOMIDE)
    place = situation(record_of(administrations=given), knowledge, TODAY, PARIS)
    assert place.clock.c1d1 == c1d1
    found = only(findings(knowledge, dex_order(day_of(3, 1, c1d1)), administrations=given))
    assert (found.rule, found.cycle, found.cycle_day, found.stop_date) == ("dex-after-cycle-2", 3, 1, day_of(3, 1, c1d1))


@pytest.mark.parametrize(("late", "rule"), [(INFUSION_SLACK_DAYS, "dex-after-cycle-2"), (INFUSION_SLACK_DAYS + 1,
                                                                                           "cannot-verify")])
def test_infusion_slack_of_a_late_cycle_3_day_1(knowledge, late, rule):
    """Cycle 3 day 1 given 2 days late is on time (the calendar holds); 3 days late is a delayed cycle."""
    found = only(findings(knowledge, dex_order(day_of(3, 1) + timedelta(days=1)), **delayed_cycle_3(late)))
    assert found.rule == rule
    if rule == "dex-after-cycle-2":
        assert (found.cycle, found.cycle_day, found.stop_date) == (3, 2, day_of(3, 1))
    else:
        assert found.missing == ("cycle of the order's first day unclear",)


def test_isatuximab_on_the_enrolment_day_is_cycle_1_day_1(knowledge):
    kw = {"plans": (), "administrations": (*course(*STANDARD, c1d1=ENROLLED), POMALIDOMIDE)}
    assert situation(record_of(**kw), knowledge, TODAY, PARIS).clock.c1d1 == ENROLLED
    found = only(findings(knowledge, dex_order(day_of(3, 1, ENROLLED)), **kw))
    assert (found.rule, found.cycle, found.cycle_day, found.stop_date) == (
        "dex-after-cycle-2", 3, 1, day_of(3, 1, ENROLLED))


def test_isatuximab_the_day_before_enrolment_is_not_the_study_course(knowledge):
    before = administration("isatuximab", ENROLLED - timedelta(days=1), "isa-before")
    kw = {"plans": (), "administrations": (before, *course(*STANDARD), POMALIDOMIDE)}
    assert situation(record_of(**kw), knowledge, TODAY, PARIS).clock.c1d1 == C1D1
    # 2026-10-15 would be cycle 3 day 1 from the day before enrolment: here it is cycle 2 day 17
    found = only(findings(knowledge, dex_order(day_of(3, 1, ENROLLED - timedelta(days=1))), **kw))
    assert (found.rule, found.cycle, found.cycle_day) == ("dex-dose-mismatch", 2, 16)


# --- order-select: the selected orders ------------------------------------------------------------------


def two_orders():
    return dex_order(day_of(3, 1), order_id="late"), dex_order(day_of(1, 8), order_id="right")


@pytest.mark.parametrize(("selections", "refs"), [
    (("MedicationRequest/late",), ["MedicationRequest/late"]),
    (("MedicationRequest/right",), []),
    (("https://ehr.example.org/fhir/MedicationRequest/late",), ["MedicationRequest/late"]),
    (("MedicationRequest/unknown",), ["MedicationRequest/late"]),  # none matches: all are checked
    (("MedicationRequest/xlate",), ["MedicationRequest/late"]),  # not a match: "late" ≠ "xlate"
    ((), ["MedicationRequest/late"]),
])
def test_order_select_checks_the_selected_orders(knowledge, selections, refs):
    found = findings(knowledge, *two_orders(), hook="order-select", selections=selections)
    assert [f.order_ref for f in found] == refs
    assert all(f.rule == "dex-after-cycle-2" for f in found)


def test_candidate_orders(knowledge):
    late, right = two_orders()
    held = dex_order(day_of(3, 1), order_id="held", status="cancelled")
    service = {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
               "subject": {"reference": "Patient/pat-42"}, "code": {"text": "dexamethasone"}}
    record = record_of("order-sign", (late, right, held, service))
    ids = lambda orders: [o.id for o in orders]  # noqa: E731
    assert ids(candidate_orders(record, ())) == ["late", "right"]
    assert ids(candidate_orders(record, ("MedicationRequest/right",))) == ["right"]
    assert ids(candidate_orders(record, ("MedicationRequest/held",))) == ["late", "right"]
    assert ids(candidate_orders(record, ("a/b/MedicationRequest/late", "MedicationRequest/right"))) == [
        "late", "right"]
    assert ids(candidate_orders(record, ("ServiceRequest/sr-1",))) == ["late", "right"]


# --- situation and last_dex_day ------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "cycle", "cycle_day"), [
    (TODAY, 4, 1), (C1D1, 1, 1), (day_of(2, 28), 2, 28), (day_of(3, 1), 3, 1), (C1D1 - timedelta(days=1), None, None),
])
def test_situation_of_an_arm_b_patient(knowledge, day, cycle, cycle_day):
    place = situation(record_of(), knowledge, day, PARIS)
    assert (place.cycle, place.cycle_day, place.stop_cycle, place.stop_date) == (cycle, cycle_day, 3, day_of(3, 1))
    assert place.enrolled.arm.key == "B" and place.clock.c1d1 == C1D1


def test_situation_of_an_arm_a_patient(knowledge):
    place = situation(record_of(**arm_a()), knowledge, TODAY, PARIS)
    assert (place.cycle, place.cycle_day, place.stop_cycle, place.stop_date) == (4, 1, None, None)
    assert place.clock.regimen.key == "ICARIA" and place.enrolled.arm.key == "A"


def test_last_dex_day():
    base = DexFinding("dex-after-cycle-2", "MedicationRequest/x", None)
    assert last_dex_day(base) is None
    assert last_dex_day(replace(base, stop_date=date(2026, 10, 27))) == date(2026, 10, 26)
    assert (base.arm, base.regimen) == (None, None)


# --- paths no record reaches: a clock with no candidate regimen ----------------------------------------


def test_a_clock_without_regimens_says_regimen_unknown(knowledge):
    """cycle_clock never leaves a known cycle 1 day 1 with no regimen (contradictory plans are a problem);
    the rule still answers cannot-verify "regimen unknown" rather than nothing if it ever did."""
    record = record_of("order-sign", (dex_order(day_of(3, 1)),))
    place = situation(record, knowledge, TODAY, PARIS)
    clock = replace(place.clock, regimens=())
    facts = order_facts(record.draft_orders[0], record, knowledge, TODAY, PARIS)
    found = only(dex._order_findings(facts, place.enrolled, clock, record, knowledge))
    assert (found.rule, found.missing, found.notes) == ("cannot-verify", ("regimen unknown",), ())
    assert dex._stop(clock) == (None, None)
    assert dex._gives(clock, 3) is None


def test_a_last_day_with_no_cycle_and_no_reason_says_regimen_unknown(knowledge):
    record = record_of("order-sign", (daily(day_of(2, 22), 10),))
    place = situation(record, knowledge, TODAY, PARIS)
    facts = order_facts(record.draft_orders[0], record, knowledge, TODAY, PARIS)
    clock = place.clock

    class Partial(type(clock)):
        """The clock, with no cycle for the order's last day (as two disagreeing candidates would)."""

        def position(self, day):
            return None if day == facts.last_day else super().position(day)

    partial = Partial(**{f.name: getattr(clock, f.name) for f in dataclasses.fields(clock) if f.init})
    common = {"order_ref": facts.reference, "enrolled": place.enrolled, "facts": facts, "clock": partial,
              "notes": ("a doubt",)}
    found = only(dex._runs_past(facts, partial, common))
    assert (found.rule, found.missing, found.notes) == ("cannot-verify", ("regimen unknown",), ("a doubt",))


# --- mutants: the patient's time zone, French names, the days of an order whose spacing is unknown -----


def test_the_patients_time_zone_places_enrolment_and_infusions(knowledge):
    """Enrolled 2026-09-01 00:30 in Paris (22:30 UTC the day before); a previous line's isatuximab on
    2026-08-31, the study course's first at 00:30 Paris on 2026-09-01: cycle 1 day 1 is 2026-09-01."""
    subject = research_subject(enrolled="2026-08-31T22:30:00Z")
    first = administration("isatuximab", "2026-08-31T22:30:00Z", "isa-first")
    kw = {"subjects": (subject,), "plans": (),
          "administrations": (administration("isatuximab", "2026-08-31", "isa-old"), first,
                              *course(*STANDARD[1:]), POMALIDOMIDE)}
    place = situation(record_of(**kw), knowledge, day_of(3, 1), PARIS)
    assert (place.enrolled.enrolled_on, place.clock.c1d1, place.cycle, place.cycle_day) == (C1D1, C1D1, 3, 1)
    found = only(findings(knowledge, dex_order(day_of(3, 1)), **kw))
    assert (found.rule, found.cycle, found.cycle_day, found.stop_date) == ("dex-after-cycle-2", 3, 1, day_of(3, 1))


def test_an_unreadable_draft_named_in_french_cannot_verify(knowledge):
    bad = dex_order(day_of(1, 8), order_id="bad", status=12,
                    medication={"medicationCodeableConcept": {"text": "Dexaméthasone 20 mg"}})
    assert only(findings(knowledge, bad)).missing == ("a dexamethasone order could not be read",)


def test_an_unreadable_draft_with_a_dexamethasone_code_of_another_system_gives_nothing(knowledge):
    bad = dex_order(day_of(1, 8), order_id="bad", status=12,
                    medication={"medicationCodeableConcept": {"coding": [{"system": "urn:local", "code": "3264"}]}})
    assert findings(knowledge, bad) == []


@pytest.mark.parametrize(("arm", "day", "off"), [("A", day_of(3, 3), (3,)), ("A", day_of(3, 8), ()),
                                                 ("B", day_of(2, 3), (3,))])
def test_a_count_without_spacing_is_checked_on_its_first_day(knowledge, arm, day, off):
    order = dex_order(day, days=None, frequency=None)
    order["dosageInstruction"][0]["timing"]["repeat"]["count"] = 4
    found = [f for f in findings(knowledge, order, **(arm_a() if arm == "A" else {}))
             if f.rule == "dex-dose-mismatch"]
    assert [f.notes for f in found] == ([(f"doses on cycle days {off[0]}, outside the regimen's days",)]
                                        if off else [])


def test_monthly_bounded_order_has_no_days_to_check(knowledge):
    """A monthly timing with an end cannot be expanded into days: only its dose is checked."""
    order = dex_order(day_of(3, 3), days=60, frequency=(1, 1, "mo"))
    assert findings(knowledge, order, **arm_a()) == []
    assert only(findings(knowledge, dex_order(day_of(3, 3), days=60, frequency=(1, 1, "mo"), dose=30),
                         **arm_a())).notes == ()


def _without_dex(regimen, cycle: int):
    """The regimen with no dexamethasone in the cycle definition covering `cycle` (a made-up variant)."""
    blocks = tuple(replace(b, drugs=tuple(d for d in b.drugs if d.drug != "dexamethasone")) if b.covers(cycle)
                   else b for b in regimen.blocks)
    return replace(regimen, key=f"{regimen.key}-variant", blocks=blocks)


def _with_dose(regimen, value: float):
    """The regimen with every dexamethasone dose option set to `value` mg (a made-up variant)."""
    def action(d):
        return replace(d, options=tuple(replace(o, value=value) for o in d.options)) if d.drug == DEX else d
    blocks = tuple(replace(b, drugs=tuple(action(d) for d in b.drugs)) for b in regimen.blocks)
    return replace(regimen, key=f"{regimen.key}-{value:g}", blocks=blocks)


DEX = "dexamethasone"


def _with_regimens(knowledge, order: dict, regimens, birth: str | None = "1960-05-10"):
    record = record_of("order-sign", (order,), patient_resource=patient(birth))
    place = situation(record, knowledge, TODAY, PARIS)
    clock = replace(place.clock, regimens=regimens)
    facts = order_facts(record.draft_orders[0], record, knowledge, TODAY, PARIS)
    return dex._order_findings(facts, place.enrolled, clock, record, knowledge)


@pytest.mark.parametrize("birth", ["1960-05-10", None])
def test_candidates_that_disagree_on_giving_dex_in_a_cycle_say_regimen_unknown(knowledge, birth):
    """Two candidate regimens, one without dexamethasone in cycle 2 (not in the shipped knowledge): an order
    in cycle 2 gets no arm B card either way, and no dose check ("regimen unknown", whatever the age)."""
    icaria = next(r for r in knowledge.regimens if (r.key, r.arm) == ("ICARIA", "B"))
    found = only(_with_regimens(knowledge, daily(day_of(2, 8), 30), (icaria, _without_dex(icaria, 2)), birth))
    assert (found.rule, found.missing, found.cycle) == ("cannot-verify", ("dose not checked, regimen unknown",), 2)
    assert found.notes == ("the regimens possible for this patient give different doses",)


def test_candidates_with_the_same_days_but_different_doses_say_regimen_unknown(knowledge):
    icaria = next(r for r in knowledge.regimens if (r.key, r.arm) == ("ICARIA", "B"))
    found = only(_with_regimens(knowledge, dex_order(day_of(1, 8), dose=40), (icaria, _with_dose(icaria, 30))))
    assert found.missing == ("dose not checked, regimen unknown",)
    same = _with_regimens(knowledge, dex_order(day_of(1, 8), dose=30), (_with_dose(icaria, 30),) * 2)
    assert same == []


def test_candidates_that_stop_dex_in_different_cycles_have_no_stop(knowledge):
    icaria = next(r for r in knowledge.regimens if (r.key, r.arm) == ("ICARIA", "B"))
    found = _with_regimens(knowledge, daily(day_of(2, 22), None), (icaria, _without_dex(icaria, 2)))
    assert [(f.rule, f.stop_cycle, f.stop_date) for f in found] == [("cannot-verify", None, None)]


def _with_days(regimen, days: tuple[int, ...]):
    """The regimen with dexamethasone on `days` of every cycle that gives it (a made-up variant)."""
    blocks = tuple(replace(b, drugs=tuple(replace(d, days=days) if d.drug == DEX else d for d in b.drugs))
                   for b in regimen.blocks)
    return replace(regimen, key=f"{regimen.key}-days", blocks=blocks)


def test_candidates_with_the_same_dose_on_different_days_say_regimen_unknown(knowledge):
    icaria = next(r for r in knowledge.regimens if (r.key, r.arm) == ("ICARIA", "B"))
    found = only(_with_regimens(knowledge, dex_order(day_of(1, 8)), (icaria, _with_days(icaria, (1, 8)))))
    assert (found.missing, found.expected, found.expected_days) == (("dose not checked, regimen unknown",), None, ())


def test_single_dose_candidates_that_differ_are_regimen_unknown_even_without_an_age(knowledge):
    """IKEMA's dose does not depend on age: two IKEMA-like candidates giving 20 and 30 mg are "regimen
    unknown", not "age unknown", when the birth date is missing."""
    ikema = next(r for r in knowledge.regimens if (r.key, r.arm) == ("IKEMA", "B"))
    found = only(_with_regimens(knowledge, dex_order(day_of(1, 8), dose=20), (ikema, _with_dose(ikema, 30)),
                                birth=None))
    assert (found.missing, found.age) == (("dose not checked, regimen unknown",), None)


# --- mutants of the second run: the order of orders, today and the zone in every path -----------------

MED_DEX = {"resourceType": "Medication", "id": "med-dex",
           "code": {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}]}}
BY_REFERENCE = {"medicationReference": {"reference": "Medication/med-dex"}}


def _undated(order: dict) -> dict:
    """The order with no timing and no authoredOn: it starts today (2026-11-24, cycle 4 day 1)."""
    del order["dosageInstruction"][0]["timing"]
    del order["authoredOn"]
    return order


def _near_midnight(order: dict) -> dict:
    """The order starting 2026-10-26 23:15 UTC: 2026-10-27 in Paris, cycle 3 day 1 (cycle 2 day 28 in UTC)."""
    order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-10-26T23:15:00Z"}
    return order


def test_two_unreadable_studies_are_both_named(knowledge):
    subjects = (research_subject(study="ResearchStudy/unknown-1", subject_id="subj-a"),
                research_subject(study="ResearchStudy/unknown-2", subject_id="subj-b"))
    found = only(findings(knowledge, dex_order(day_of(3, 1)), subjects=subjects, studies=()))
    assert found.notes == ("the studies named by 2 trial enrolments (ResearchSubject/subj-a, "
                           "ResearchSubject/subj-b) could not be read: it may be NCT06561854",)
    assert found.evidence == ("MedicationRequest/dex-1", "ResearchSubject/subj-a", "ResearchSubject/subj-b")


def test_study_unreadable_reads_each_order_as_the_rules_do(knowledge):
    """The drug by reference, the start from today, the day in the patient's zone."""
    orders = (dex_order(order_id="by-ref", medication=BY_REFERENCE), _undated(dex_order(order_id="undated")),
              _near_midnight(dex_order(order_id="midnight")))
    kw = {"subjects": (research_subject(study="ResearchStudy/unknown-study"),), "studies": (),
          "draft_extra": (MED_DEX,)}
    found = findings(knowledge, *orders, **kw)
    assert [f.order_ref for f in found] == ["MedicationRequest/by-ref", "MedicationRequest/undated",
                                           "MedicationRequest/midnight"]
    assert [f.facts.start for f in found] == [day_of(4, 1), TODAY, day_of(3, 1)]
    assert found[0].evidence == ("MedicationRequest/by-ref", "Medication/med-dex", "ResearchSubject/subj-1")


def test_an_undated_order_starts_today(knowledge):
    found = only(findings(knowledge, _undated(dex_order())))
    assert (found.rule, found.cycle, found.cycle_day, found.facts.start) == ("dex-after-cycle-2", 4, 1, TODAY)


def test_an_order_near_midnight_is_placed_on_the_patients_day(knowledge):
    found = only(findings(knowledge, _near_midnight(dex_order())))
    assert (found.rule, found.cycle, found.cycle_day) == ("dex-after-cycle-2", 3, 1)


@pytest.mark.parametrize("first", [
    lambda: medication_request("paracetamol", day_of(3, 1), "para", status="draft"),
    lambda: dex_order(day_of(3, 1), order_id="eye", route="eye drops"),
    lambda: dex_order(day_of(3, 1), order_id="lost", medication={"medicationReference": {"reference": "Medication/x"}}),
], ids=["another-drug", "local-route", "unreadable-drug"])
def test_the_orders_after_one_without_a_card_are_checked(knowledge, first):
    found = findings(knowledge, first(), dex_order(day_of(3, 1), order_id="late"))
    assert [f.order_ref for f in found if f.rule == "dex-after-cycle-2"] == ["MedicationRequest/late"]


@pytest.mark.parametrize("day", [C1D1, day_of(3, 1)])
def test_a_clock_without_regimens_on_cycle_1_day_1_says_regimen_unknown(knowledge, day):
    record = record_of("order-sign", (dex_order(day),))
    place = situation(record, knowledge, TODAY, PARIS)
    facts = order_facts(record.draft_orders[0], record, knowledge, TODAY, PARIS)
    found = only(dex._order_findings(facts, place.enrolled, replace(place.clock, regimens=()), record, knowledge))
    assert found.missing == ("regimen unknown",)


# --- the order hooks' short cut: could any draft be dexamethasone? -------------------------------------


@pytest.mark.parametrize(("selections", "could"), [
    ((), True),  # every draft counts: the dexamethasone one too
    (("MedicationRequest/ond",), False),  # order-select on the antiemetic: the dexamethasone draft is not asked
    (("MedicationRequest/dex",), True),
    (("MedicationRequest/unknown",), True),  # none matches: all are checked, as evaluate_orders does
])
def test_orders_could_be_dex_reads_the_selected_drafts(knowledge, selections, could):
    ondansetron = medication_request("ondansetron 8 mg", TODAY, "ond", status="draft")
    record = record_of("order-select", (ondansetron, dex_order(TODAY, order_id="dex")), selections=selections)
    assert dex.orders_could_be_dex(record, knowledge, record.selections) is could
