"""The cycle clock's corners the mutation run found untested: the stratum drug's window and zone, isatuximab
orders written every way, and how courses are split without an enrolment date (rules/cycles.py).

Built like tests/rules/test_cycle_clock.py: arm B, enrolled 2026-08-20 unless told otherwise, no regimen
CarePlan unless given, Europe/Paris.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from cds_service.knowledge.regimens import CycleBlock, DoseOption, DrugAction, Regimen
from cds_service.rules.cycles import NO_START, _alike, _on_a_later_day
from tests.rules.scenario import C1D1, administration, care_plan, day_of, research_subject
from tests.rules.test_cycle_clock import (
    DELAYED_C2,
    POMALIDOMIDE,
    STANDARD,
    clock_of,
    course,
    isa,
    isa_order,
    undated_subject,
)

CARFILZOMIB = administration("carfilzomib", C1D1, "cfz-1")
BOTH = "not recorded (no regimen CarePlan, and both ICARIA and IKEMA drugs given)"


def test_a_previous_lines_pomalidomide_does_not_tell_the_stratum(knowledge):
    old = administration("pomalidomide", date(2026, 3, 1), "pom-old")
    clock = clock_of(knowledge, research_subject(), old, CARFILZOMIB, *course(*STANDARD))
    assert clock.regimen.key == "IKEMA"
    assert clock.regimen_how == "MedicationAdministration/cfz-1 (IKEMA drug given in the study course)"


def test_both_stratum_drugs_in_the_study_course_leave_both_regimens(knowledge):
    pom = administration("pomalidomide", C1D1, "pom-1")
    clock = clock_of(knowledge, research_subject(), pom, CARFILZOMIB, *course(*STANDARD))
    assert (clock.regimen, clock.regimen_how, len(clock.regimens)) == (None, BOTH, 2)
    alone = clock_of(knowledge, research_subject(), *course(*STANDARD))
    assert alone.regimen_how == "not recorded (no regimen CarePlan)"


def test_the_stratum_drug_on_the_enrolment_day_in_paris_counts(knowledge):
    """Pomalidomide at 00:30 on the enrolment day in Paris (22:30 UTC the day before)."""
    pom = administration("pomalidomide", "2026-08-19T22:30:00Z", "pom-1")
    clock = clock_of(knowledge, research_subject(), pom, *course(*STANDARD))
    assert clock.regimen.key == "ICARIA"


@pytest.mark.parametrize(("when", "c1d1"), [
    ({"boundsPeriod": {"start": "2026-08-31T22:30:00Z"}}, C1D1),  # 00:30 on 1 September in Paris
    (None, C1D1),
])
def test_an_isatuximab_order_gives_cycle_1_day_1_in_the_patients_day(knowledge, when, c1d1):
    order = isa_order(C1D1, authoredOn="2026-08-31T22:30:00Z")
    if when is None:
        del order["dosageInstruction"]
    else:
        order["dosageInstruction"] = [{"timing": {"repeat": when}}]
    assert clock_of(knowledge, research_subject(), order).c1d1 == c1d1


@pytest.mark.parametrize("dosage", [
    {"text": "per protocol"},  # no timing
    {"timing": {"code": {"text": "weekly"}}},  # a timing without repeat
    {"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}},  # a repeat without bounds
], ids=["no-timing", "no-repeat", "no-bounds"])
def test_an_isatuximab_order_without_bounds_starts_on_its_order_date(knowledge, dosage):
    order = isa_order(C1D1, authoredOn=C1D1.isoformat())
    order["dosageInstruction"] = [dosage]
    assert clock_of(knowledge, research_subject(), order).c1d1 == C1D1


def test_isatuximab_exactly_a_cycle_apart_is_one_course(knowledge):
    """Without an enrolment date a course ends after more than a cycle (28 days) without isatuximab."""
    clock = clock_of(knowledge, undated_subject(), care_plan(start=None),
                     *course((1, 1), (2, 1)), administration("pomalidomide", C1D1, "pom-1"))
    assert (clock.c1d1, clock.problems) == (C1D1, ())
    apart = clock_of(knowledge, undated_subject(), *course((1, 1)), *course((2, 2)))
    assert apart.c1d1 is None and "a pause in the study course" in apart.problems[0]


def test_a_single_study_infusion_after_a_previous_line(knowledge):
    old = (administration("isatuximab", date(2025, 1, 1), "isa-old-1"),
           administration("isatuximab", date(2025, 1, 8), "isa-old-2"))
    clock = clock_of(knowledge, undated_subject(), *old, *course((1, 1)))
    assert clock.c1d1 == C1D1 and any("previous line" in d for d in clock.doubts)


def test_a_single_previous_infusion_before_the_study_course(knowledge):
    old = administration("isatuximab", date(2025, 1, 1), "isa-old-1")
    clock = clock_of(knowledge, undated_subject(), old, *course(*STANDARD))
    assert clock.c1d1 == C1D1 and any("2025-01-01 to 2025-01-01" in d for d in clock.doubts)
    assert clock.position(day_of(3, 1) + timedelta(days=1)) == (3, 2)


def test_without_an_enrolment_date_the_course_is_known_until_a_cycle_and_the_slack_after_its_last(knowledge):
    clock = clock_of(knowledge, undated_subject(), *course(*STANDARD))
    last = day_of(3, 1) + timedelta(days=28 + 2)  # the last isatuximab is cycle 3 day 1
    assert clock.stale_after == last
    assert clock.position(last) == (4, 3)
    assert clock.position(last + timedelta(days=1)) is None
    assert "may not be in the study course" in clock.unclear(last + timedelta(days=1))


def test_an_infusion_given_as_a_period_is_dated_in_the_patients_zone(knowledge):
    given = administration("isatuximab", C1D1, "isa-period")
    del given["effectiveDateTime"]
    given["effectivePeriod"] = {"start": "2026-08-31T22:30:00Z", "end": "2026-09-01T02:30:00Z"}
    assert clock_of(knowledge, research_subject(), given).c1d1 == C1D1


def _med(med_id: str, drug: str) -> dict:
    return {"resourceType": "Medication", "id": med_id, "code": {"text": drug}}


def test_isatuximab_by_medication_reference(knowledge):
    given = administration("isatuximab", C1D1, "isa-ref")
    del given["medicationCodeableConcept"]
    given["medicationReference"] = {"reference": "Medication/med-isa"}
    assert clock_of(knowledge, research_subject(), _med("med-isa", "isatuximab"), given).c1d1 == C1D1
    order = isa_order(C1D1)
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/med-isa"}
    assert clock_of(knowledge, research_subject(), _med("med-isa", "isatuximab"), order).c1d1 == C1D1


def test_an_isatuximab_order_after_a_do_not_perform_one_counts(knowledge):
    never = isa_order(C1D1 - timedelta(days=5), "isa-never", doNotPerform=True)
    clock = clock_of(knowledge, research_subject(), never, isa_order(C1D1))
    assert clock.c1d1 == C1D1


def test_the_regimen_plan_after_a_revoked_one_or_another_canonical_counts(knowledge):
    revoked = care_plan("ikema-arm-b", plan_id="cp-0", status="revoked")
    assert clock_of(knowledge, research_subject(), revoked, care_plan()).regimen.key == "ICARIA"
    plan = care_plan()
    plan["instantiatesCanonical"].insert(0, "https://elsewhere.example.org/PlanDefinition/other")
    clock = clock_of(knowledge, research_subject(), plan)
    assert (clock.regimen.key, clock.c1d1) == ("ICARIA", C1D1)


def test_the_plans_start_is_the_patients_day(knowledge):
    plan = care_plan(start=None)
    plan["period"] = {"start": "2026-08-31T22:30:00Z"}
    assert clock_of(knowledge, research_subject(), plan).c1d1 == C1D1


@pytest.mark.parametrize(("before", "c1d1"), [(2, date(2026, 8, 18)), (3, None)])
def test_a_plan_starting_the_slack_before_enrolment_is_still_the_course(knowledge, before, c1d1):
    plan = care_plan(start=date(2026, 8, 20) - timedelta(days=before))
    assert clock_of(knowledge, research_subject(), plan).c1d1 == c1d1


def test_the_reason_a_date_has_no_cycle_names_its_calendar_cycle_and_day(knowledge):
    given = (*course((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 15)),
             administration("isatuximab", day_of(3, 1) + timedelta(days=7), "isa-c3-late"))
    clock = clock_of(knowledge, research_subject(), care_plan(), *given)
    assert clock.unclear(day_of(3, 5)).startswith(f"{day_of(3, 5).isoformat()} is cycle 3 day 5 by the calendar "
                                                  "from cycle 1 day 1 (2026-09-01), but cycle 2 day 33")


ISA = "MedicationAdministration/isa-260901-1-1-late0"  # tests/rules/test_cycle_clock.py's isa(1, 1)


@pytest.mark.parametrize(("resources", "how", "doubt"), [
    ((care_plan(),), "CarePlan/cp-1 period.start", None),
    ((care_plan(), *course((1, 1))), "CarePlan/cp-1 period.start", None),
    ((care_plan(start=C1D1 + timedelta(days=3)), *course((1, 1))), f"the first isatuximab given: {ISA}",
     f"CarePlan/cp-1 starts on 2026-09-04, 3 days after isatuximab was first given (2026-09-01, {ISA})"),
    ((care_plan(start=C1D1 - timedelta(days=7)), *course(*STANDARD)), f"the first isatuximab given: {ISA}",
     f"CarePlan/cp-1 starts on 2026-08-25, but isatuximab was first given 7 days later (2026-09-01, {ISA})"),
    ((care_plan(), *course((1, 8), (1, 15), (1, 22), (2, 1), (2, 15))), "CarePlan/cp-1 period.start",
     "no isatuximab is recorded on cycle 1 day 1"),
    (course((1, 1)), f"the first isatuximab administration on or after enrolment (2026-08-20): {ISA}", None),
    ((care_plan(start=date(2026, 6, 1)), *course((1, 1))),
     f"the first isatuximab administration on or after enrolment (2026-08-20): {ISA}",
     "CarePlan/cp-1 starts on 2026-06-01, before the enrolment on 2026-08-20: it is not taken for cycle 1 day 1"),
])
def test_where_cycle_1_day_1_comes_from(knowledge, resources, how, doubt):
    clock = clock_of(knowledge, research_subject(), *resources)
    assert (clock.c1d1, clock.c1d1_how) == (C1D1, how)
    if doubt is None:
        assert clock.doubts == ()
    else:
        assert any(d.startswith(doubt) for d in clock.doubts), clock.doubts


def test_cycle_1_day_1_without_an_enrolment_date_says_so(knowledge):
    clock = clock_of(knowledge, undated_subject(), *course((1, 1)))
    assert clock.c1d1_how == f"the first isatuximab administration: {ISA}"


def test_a_plan_before_enrolment_and_an_isatuximab_order(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(start=date(2026, 6, 1)), isa_order(C1D1))
    assert (clock.c1d1, clock.c1d1_how) == (
        C1D1, "the first isatuximab order on or after enrolment (2026-08-20): MedicationRequest/isa-order")


def test_how_the_regimen_was_told_from_care_plans(knowledge):
    two = clock_of(knowledge, research_subject(), care_plan(), care_plan(plan_id="cp-2"))
    assert two.regimen_how == "CarePlan/cp-1, CarePlan/cp-2 instantiates the ICARIA regimen"
    both = clock_of(knowledge, research_subject(), care_plan(), care_plan("ikema-arm-b", plan_id="cp-2"))
    assert (both.regimens, both.regimen_how, both.c1d1) == ((), "contradictory CarePlans", None)
    assert "CarePlans name more than one regimen (ICARIA, IKEMA)" in both.problems


def test_a_late_start_whose_day_8_slipped_by_the_slack_still_fits_its_own_calendar(knowledge):
    """The plan says 1 September; isatuximab started on the 5th and its day 8 came 2 days late (the 14th):
    both infusions fit the calendar from the 5th (2 days is within the slack), only the 14th fits the plan's."""
    given = (administration("isatuximab", date(2026, 9, 5), "isa-a"),
             administration("isatuximab", date(2026, 9, 14), "isa-b"))
    clock = clock_of(knowledge, research_subject(), care_plan(), *given)
    assert (clock.c1d1, clock.problems) == (date(2026, 9, 5), ())
    assert any(d.startswith("CarePlan/cp-1 starts on 2026-09-01, but isatuximab was first given 4 days later")
               for d in clock.doubts), clock.doubts


@pytest.mark.parametrize("after", [12, 16], ids=["day-15-two-days-early", "day-15-two-days-late"])
def test_cycle_2_day_15_within_the_slack_with_its_day_1_not_recorded_keeps_the_calendar(knowledge, after):
    """Cycle 2's day 1 infusion is missing; its day 15 came 2 days early or late: not a delayed cycle 2."""
    late_15 = administration("isatuximab", day_of(2, 1) + timedelta(days=after), "isa-c2-15")
    clock = clock_of(knowledge, research_subject(), care_plan(), *course((1, 1), (1, 8), (1, 15), (1, 22)),
                     late_15)
    assert not any("delayed" in d for d in clock.doubts), clock.doubts
    assert clock.position(day_of(3, 1)) == (3, 1)


def _site_regimen(*blocks: tuple[int, int | None, tuple[int, ...], tuple[int, ...] | None, float]) -> Regimen:
    """A made-up site adaptation: (first, last, isatuximab days, dexamethasone days or None, dose mg) per block.
    Sites may change the days and doses of each drug (knowledge/sites.py)."""
    def block(first, last, isa_days, dex_days, mg):
        drugs = [DrugAction("isatuximab", f"isa-{first}", "isatuximab", isa_days, ())]
        if dex_days is not None:
            dose = DoseOption(f"dex-{mg:g}", mg, "mg", f"{mg:g} mg")
            drugs.append(DrugAction("dexamethasone", f"dex-{first}", "dexamethasone", dex_days, (dose,)))
        return CycleBlock(f"c{first}", f"cycles {first}", first, last, 28, tuple(drugs))
    return Regimen("ICARIA", "B", "urn:site", "urn:site|1", "site ICARIA", tuple(block(*b) for b in blocks))


def test_cycles_of_a_site_regimen_that_give_dexamethasone_on_other_days_or_doses_are_not_alike():
    regimen = _site_regimen((1, 1, (1, 8, 15, 22), (1, 8, 15, 22), 40), (2, 2, (1, 15), (1, 15), 40),
                            (3, 3, (1, 15), (1, 15), 20), (4, None, (1, 15), None, 0))
    assert _alike(regimen, 1, 1) and _alike(regimen, 4, 4)
    assert not _alike(regimen, 1, 2)  # other days, same dose
    assert not _alike(regimen, 2, 3)  # same days, another dose
    assert not _alike(regimen, 3, 4)  # dexamethasone, then none


def test_an_infusion_near_a_site_regimens_day_2_isatuximab_is_of_that_cycle():
    regimen = _site_regimen((1, None, (1, 2, 15), (1, 15), 40))
    assert _on_a_later_day(regimen, 2, 3)  # day 4: within the slack of day 2
    assert not _on_a_later_day(regimen, 2, 6)  # day 7: near no isatuximab day


# The survivors of the run after the anchors memo (issue 14): the off-calendar doubt, the windows without
# a cycle and their reach, c1d1_how when cycle 1 day 1 is refused, and the boundaries of the course checks.

def _off(cycle: int, day: int) -> str:
    """The doubt of tests/rules/test_cycle_clock.py's isa(cycle, day) given off an isatuximab day."""
    return (f"isatuximab was given on {day_of(cycle, day).isoformat()} (MedicationAdministration/isa-260901-"
            f"{cycle}-{day}-late0), cycle {cycle} day {day}, not an isatuximab day: a cycle may have been delayed")


def test_an_infusion_off_an_isatuximab_day_is_a_doubt(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(), *course(*STANDARD, (2, 8)))
    assert clock.doubts == (_off(2, 8),)


def test_of_several_infusions_off_an_isatuximab_day_only_the_latest_is_named(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(), *course(*STANDARD, (1, 4), (2, 8), (2, 22)))
    assert clock.doubts == (_off(2, 22),)


def test_an_infusion_the_record_cannot_place_does_not_hide_a_later_one_off_the_calendar(knowledge):
    """Cycle 2 began 7 days late; an infusion on 29 October falls where the calendar says cycle 3 and the
    count from the delay cycle 2 (no cycle), and a later one is on day 8 of the delayed cycle 3."""
    clock = clock_of(knowledge, research_subject(), care_plan(), *DELAYED_C2, isa(3, 3), isa(3, 8), isa(3, 15))
    assert clock.position(day_of(3, 3)) is None
    assert clock.doubts[1] == (
        "isatuximab was given on 2026-11-10 (MedicationAdministration/isa-260901-3-15-late0), cycle 3 day 8, "
        "not an isatuximab day: a cycle may have been delayed")


def _site_knowledge(knowledge, *regimens: Regimen):
    """The knowledge as a site sees it (Knowledge.for_site): its adaptations in place of the published ones."""
    keys = {(r.key, r.arm) for r in regimens}
    return replace(knowledge, regimens=(*regimens, *(r for r in knowledge.regimens if (r.key, r.arm) not in keys)))


# A site that gives isatuximab weekly in cycles 1 and 2 (sites may change the days of each drug).
WEEKLY_C2 = _site_regimen((1, 1, (1, 8, 15, 22), (1, 8, 15, 22), 40), (2, 2, (1, 8, 15, 22), (1, 8, 15, 22), 40),
                          (3, None, (1, 15), None, 0))


def test_a_missing_day_1_is_judged_by_the_next_cycles_own_isatuximab_days(knowledge):
    """Cycle 2 day 1 is not recorded, its day 8 is: a day 8 of this site's cycle 2, not a delayed cycle 2."""
    site = _site_knowledge(knowledge, WEEKLY_C2)
    clock = clock_of(site, research_subject(), POMALIDOMIDE, *course((1, 1), (1, 8), (1, 15), (1, 22), (2, 8)))
    assert (clock.regimen, clock.doubts) == (WEEKLY_C2, ())
    assert clock.position(day_of(3, 1)) == (3, 1)


def test_while_the_stratum_is_unknown_an_isatuximab_day_of_either_regimen_is_not_off_the_calendar(knowledge):
    site = _site_knowledge(knowledge, WEEKLY_C2)
    clock = clock_of(site, research_subject(), *course((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 8)))
    assert len(clock.regimens) == 2 and clock.position(day_of(2, 8)) == (2, 8)
    assert clock.doubts == ()


def test_the_infusion_of_cycle_1_day_1_is_not_among_those_that_date_later_cycles(knowledge):
    """`given` is what dates the later cycles, and what the card's "isatuximab given" line names."""
    clock = clock_of(knowledge, research_subject(), care_plan(), *course((1, 1), (1, 8)))
    assert clock.given == ((day_of(1, 8), "MedicationAdministration/isa-260901-1-8-late0"),)
    alone = clock_of(knowledge, research_subject(), *course((1, 1)))
    assert (alone.c1d1, alone.given) == (C1D1, ())


def test_a_cycle_2_delayed_by_a_whole_cycle_leaves_every_day_of_it_without_a_cycle(knowledge):
    """Day 3 of the delayed cycle 2 is calendar cycle 3 day 3: its day number must not pass for the cycle."""
    clock = clock_of(knowledge, research_subject(), care_plan(), *course((1, 1), (1, 8), (1, 15), (1, 22)),
                     isa(2, 1, shift=28), isa(2, 15, shift=28))
    assert clock.position(day_of(3, 3)) is None
    assert clock.unclear(day_of(3, 3)) == (
        "2026-10-29 is cycle 3 day 3 by the calendar from cycle 1 day 1 (2026-09-01), but cycle 2 day 3 counting "
        "from the isatuximab given (cycle 2 day 1 on 2026-10-27)")
    assert clock.doubts[1] == (
        "from 2026-10-27 to 2026-11-23 the cycle cannot be told: 2026-10-27 is cycle 3 day 1 by the calendar "
        "from cycle 1 day 1 (2026-09-01), but cycle 2 day 1 counting from the isatuximab given (cycle 2 day 1 "
        "on 2026-10-27)")


def test_a_delayed_cycle_3_moves_the_day_1_of_cycle_4(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(),
                     *course((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 15)), isa(3, 1, shift=7))
    assert (clock.cycle_start(3), clock.cycle_start(4)) == (day_of(3, 8), day_of(4, 8))


def test_a_plan_earlier_than_the_first_isatuximab_that_fits_both_calendars_is_a_problem(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(), isa(1, 1, shift=7))
    assert (clock.c1d1, clock.c1d1_how) == (None, "unknown")
    assert clock.problems == (
        "CarePlan/cp-1 starts on 2026-09-01 but isatuximab was first given on 2026-09-08 "
        "(MedicationAdministration/isa-260901-1-1-late7): a late start or a cycle 1 day 1 infusion missing "
        "from the record, the record does not tell which",)


CONTRADICTORY = (care_plan(), care_plan("ikema-arm-b", plan_id="cp-2"))
TWO_REGIMENS = "CarePlans name more than one regimen (ICARIA, IKEMA)"


@pytest.mark.parametrize(("subject", "resources", "problem"), [
    (research_subject(), (care_plan("icaria-arm-a"), *course(*STANDARD)),
     "CarePlan/cp-1 follows the arm A version of ICARIA, the ResearchSubject says arm B"),
    (undated_subject(), (*CONTRADICTORY, *course((1, 1))), TWO_REGIMENS),
    (undated_subject(), (isa(1, 1, c1d1=C1D1 - timedelta(days=84)), *course(*STANDARD)),
     "the enrolment has no date and isatuximab stopped on 2026-06-09, then restarted on 2026-09-01: a pause in "
     "the study course cannot be told from a previous line"),
    (research_subject(), (), NO_START),
], ids=["other-arm-plan", "contradictory-plans-undated", "pause-of-three-cycles", "nothing-recorded"])
def test_when_a_problem_refuses_cycle_1_day_1_its_source_is_unknown(knowledge, subject, resources, problem):
    """The start found (a plan, the first isatuximab) is not named when a problem refuses it."""
    clock = clock_of(knowledge, subject, *resources)
    assert (clock.c1d1, clock.c1d1_how, clock.problems) == (None, "unknown", (problem,))


def test_contradictory_plans_before_a_late_first_isatuximab_are_could_not_verify(knowledge):
    clock = clock_of(knowledge, research_subject(), *CONTRADICTORY, isa(1, 1, shift=7), isa(1, 8, shift=7))
    assert (clock.c1d1, clock.problems[0]) == (None, TWO_REGIMENS)
    assert clock.problems[1].endswith("the record does not tell which")


def test_without_an_enrolment_date_a_regimen_plan_keeps_the_course_running_after_its_last_isatuximab(knowledge):
    clock = clock_of(knowledge, undated_subject(), care_plan(), *course((1, 1)))
    assert (clock.c1d1, clock.c1d1_how, clock.problems, clock.doubts) == (C1D1, "CarePlan/cp-1 period.start", (), ())
    assert clock.stale_after is None
    assert clock.position(day_of(3, 1)) == (3, 1)


@pytest.mark.parametrize(("after", "c1d1", "doubt"), [
    (28, C1D1, "CarePlan/cp-1 starts on 2026-09-29, 28 days after isatuximab was first given (2026-09-01, "
               f"{ISA}): cycles are counted from what was given"),
    (29, date(2026, 9, 30), "the enrolment has no date: isatuximab given or ordered from 2026-09-01 to 2026-09-01 "
                            "is taken for a previous line (more than 28 days before the next)"),
], ids=["a-cycle-after", "more-than-a-cycle-after"])
def test_without_an_enrolment_date_a_plan_more_than_a_cycle_after_the_isatuximab_is_a_new_course(
        knowledge, after, c1d1, doubt):
    clock = clock_of(knowledge, undated_subject(), care_plan(start=C1D1 + timedelta(days=after)), *course((1, 1)))
    assert (clock.c1d1, clock.problems, clock.doubts) == (c1d1, (), (doubt,))


def test_without_an_enrolment_date_isatuximab_resumed_after_more_than_three_cycles_is_a_new_line(knowledge):
    """Three cycles (84 days) is still a pause or a new line (test_when_a_problem_refuses_cycle_1_day_1_its_source_is_unknown)."""
    clock = clock_of(knowledge, undated_subject(), isa(1, 1, c1d1=C1D1 - timedelta(days=85)), *course(*STANDARD))
    assert (clock.c1d1, clock.problems) == (C1D1, ())
    assert clock.doubts == ("the enrolment has no date: isatuximab given or ordered from 2026-06-08 to 2026-06-08 "
                            "is taken for a previous line (more than 28 days before the next)",)


def test_without_an_enrolment_date_a_previous_lines_pomalidomide_does_not_tell_the_stratum(knowledge):
    old = administration("pomalidomide", date(2025, 3, 1), "pom-old")
    clock = clock_of(knowledge, undated_subject(), old, CARFILZOMIB, *course(*STANDARD))
    assert clock.regimen.key == "IKEMA"
    assert clock.regimen_how == "MedicationAdministration/cfz-1 (IKEMA drug given in the study course)"


def _undated_delayed_c2(last: int) -> tuple[dict, ...]:
    """Cycle 2 began 3 days late (2 October), isatuximab every 14 days after it, the last `last` days after it."""
    c2 = day_of(2, 1) + timedelta(days=3)
    later = [administration("isatuximab", c2 + timedelta(days=days), f"isa-d{days}")
             for days in (*range(0, 84, 14), last)]
    return (POMALIDOMIDE, *course((1, 1), (1, 8), (1, 15), (1, 22)), *later)


DELAY_3 = ("cycle 2 day 1 isatuximab was given on 2026-10-02 (MedicationAdministration/isa-d0), 3 days after the "
           "calendar's day 1: cycle 2 may have been delayed, later cycles are counted from it")
WINDOW_3 = ("from 2026-10-27 to 2026-10-29 the cycle cannot be told: 2026-10-27 is cycle 3 day 1 by the calendar "
            "from cycle 1 day 1 (2026-09-01), but cycle 2 day 26 counting from the isatuximab given (cycle 2 day 1 "
            "on 2026-10-02)")


@pytest.mark.parametrize(("last", "doubts"), [
    # The last day looked at is the latest delayed day 1 plus the days of delay and four cycles (cycle 3, the
    # last cycle definition, and one more): 2 October + 3 + 112 days = 25 January 2027. With the last
    # isatuximab 84 days after the delay, the course is not known to run from that very day.
    (84, (DELAY_3, WINDOW_3, "from 2027-01-25 the cycle cannot be told: no isatuximab is recorded after 2027-01-24 "
                             "and the enrolment has no date: 2027-01-25 may not be in the study course")),
    (85, (DELAY_3, WINDOW_3)),
], ids=["stale-from-the-last-day-looked-at", "stale-after-it"])
def test_the_dates_a_delay_leaves_without_a_cycle_are_looked_for_up_to_four_cycles_after_cycle_3(
        knowledge, last, doubts):
    clock = clock_of(knowledge, undated_subject(), *_undated_delayed_c2(last))
    assert clock.doubts == doubts
