"""The cycle clock, by class of record: where cycle 1 day 1 comes from, and the cycle of a date.

Each row is a record (built with tests/rules/scenario.py: arm B, enrolled 2026-08-20, ICARIA from 2026-09-01
unless told otherwise) and asserts cycle 1 day 1, the regimen, the cycle and day of a probe date (or None), and
the problems (cannot-verify) and doubts (shown on the cards). The end-to-end rows send the disagreeing
records through order-sign and assert the card.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.cycles import INFUSION_SLACK_DAYS, cycle_clock
from cds_service.rules.enrolment import enrolment
from tests.rules.scenario import (
    C1D1,
    administration,
    call,
    care_plan,
    day_of,
    dex_order,
    medication_request,
    research_study,
    research_subject,
)
from tests.spec import check_cds_response

PARIS = ZoneInfo("Europe/Paris")
OLD = date(2024, 9, 3)  # a previous line's isatuximab, two years earlier


def isa(cycle: int, day: int, *, shift: int = 0, c1d1: date = C1D1, status: str = "completed"):
    given = administration("isatuximab", day_of(cycle, day, c1d1) + timedelta(days=shift),
                           f"isa-{c1d1:%y%m%d}-{cycle}-{day}-{'late' if shift >= 0 else 'early'}{abs(shift)}")
    given["status"] = status
    return given


def course(*days: tuple[int, int], c1d1: date = C1D1) -> list[dict]:
    return [isa(cycle, day, c1d1=c1d1) for cycle, day in days]


STANDARD = ((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 15), (3, 1))
POMALIDOMIDE = administration("pomalidomide", C1D1, "pom-1")


def undated_subject() -> dict:
    subject = research_subject()
    del subject["period"]
    return subject


def isa_order(start: date, request_id: str = "isa-order", **extra) -> dict:
    order = medication_request("isatuximab", start - timedelta(days=5), request_id)
    order["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": {"start": start.isoformat()}}}}]
    order.update(extra)
    return order


def record(subject: dict, *resources: dict) -> PatientRecord:
    rec = PatientRecord(patient_id="pat-42")
    fields = {"ResearchSubject": "research_subjects", "CarePlan": "care_plans",
              "MedicationAdministration": "medication_administrations", "MedicationRequest": "medication_requests"}
    for raw in (subject, research_study(), *resources):
        resource = parse_resource(raw)
        rec.referenced[f"{resource.get_resource_type()}/{resource.id}"] = resource
        if resource.get_resource_type() in fields:
            getattr(rec, fields[resource.get_resource_type()]).append(resource)
    return rec


def clock_of(knowledge, subject: dict, *resources: dict):
    rec = record(subject, *resources)
    return cycle_clock(rec, knowledge, enrolment(rec, knowledge, PARIS), PARIS)


DELAYED_C2 = (*course((1, 1), (1, 8), (1, 15), (1, 22)), isa(2, 1, shift=7), isa(2, 15, shift=7))

# (id, subject, resources, c1d1, regimen, probe, position, problem, doubt): problem/doubt are substrings
# (None: there must be none).
ROWS = [
    ("plan only", None, (care_plan(),), C1D1, "ICARIA", day_of(3, 1), (3, 1), None, None),
    ("administrations only", None, (*course(*STANDARD), POMALIDOMIDE), C1D1, "ICARIA", day_of(2, 28),
     (2, 28), None, None),
    ("administrations only, no stratum drug: both regimens", None, tuple(course(*STANDARD)), C1D1, None,
     day_of(3, 1), (3, 1), None, None),
    ("plan and administrations agree", None, (care_plan(), *course(*STANDARD)), C1D1, "ICARIA", day_of(3, 1),
     (3, 1), None, None),
    ("plan exactly the slack after the first infusion: agree, the plan's date",
     None, (care_plan(start=C1D1 + timedelta(days=INFUSION_SLACK_DAYS)), isa(1, 1)),
     C1D1 + timedelta(days=INFUSION_SLACK_DAYS), "ICARIA", day_of(1, 8), (1, 6), None, None),
    ("plan one day past the slack after the first infusion: what was given",
     None, (care_plan(start=C1D1 + timedelta(days=INFUSION_SLACK_DAYS + 1)), isa(1, 1)), C1D1, "ICARIA",
     day_of(1, 8), (1, 8), None, "3 days after isatuximab was first given"),
    ("plan weeks later (the day it was entered): counted from what was given",
     None, (care_plan(start=day_of(1, 22)), *course(*STANDARD)), C1D1, "ICARIA", day_of(3, 5), (3, 5), None,
     "21 days after isatuximab was first given"),
    ("plan earlier, treatment started late: counted from what was given",
     None, (care_plan(start=C1D1 - timedelta(days=7)), *course(*STANDARD)), C1D1, "ICARIA", day_of(2, 22),
     (2, 22), None, "first given 7 days later"),
    ("plan earlier, the cycle 1 day 1 infusion missing from the record: the plan",
     None, (care_plan(), *course((1, 8), (1, 15), (1, 22), (2, 1), (2, 15))), C1D1, "ICARIA", day_of(3, 1),
     (3, 1), None, "no isatuximab is recorded on cycle 1 day 1"),
    ("plan earlier, one infusion fitting both: cannot verify, both dates named",
     None, (care_plan(), isa(1, 8)), None, "ICARIA", day_of(3, 1), None, "2026-09-01 but isatuximab was first "
     "given on 2026-09-08", None),
    ("plan before enrolment: not cycle 1 day 1, what was given is",
     None, (care_plan(start=date(2026, 6, 1)), *course(*STANDARD)), C1D1, "ICARIA", day_of(3, 1), (3, 1), None,
     "before the enrolment on 2026-08-20"),
    ("plan before enrolment and nothing given: cannot verify",
     None, (care_plan(start=date(2026, 6, 1)),), None, "ICARIA", day_of(3, 1), None, "before the enrolment",
     None),
    ("delayed cycle 2: after cycle 3 began by both counts, counted from the delayed day 1",
     None, (care_plan(), *DELAYED_C2), C1D1, "ICARIA", day_of(3, 15), (3, 8), None, "may have been delayed"),
    ("delayed cycle 2: cycle 3 by the calendar, cycle 2 by the infusions: no cycle",
     None, (care_plan(), *DELAYED_C2), C1D1, "ICARIA", day_of(3, 3), None, None,
     "from 2026-10-27 to 2026-11-02 the cycle cannot be told"),
    ("delayed cycle 2: the week it was waited for is still cycle 1 (dexamethasone alike)",
     None, (care_plan(), *DELAYED_C2), C1D1, "ICARIA", day_of(2, 3), (1, 31), None, "may have been delayed"),
    ("cycle 2 day 1 exactly the slack late: no delay",
     None, (care_plan(), isa(1, 1), isa(2, 1, shift=INFUSION_SLACK_DAYS)), C1D1, "ICARIA", day_of(3, 1), (3, 1),
     None, None),
    ("cycle 2 day 1 one day past the slack: a delay",
     None, (care_plan(), isa(1, 1), isa(2, 1, shift=INFUSION_SLACK_DAYS + 1)), C1D1, "ICARIA", day_of(3, 4),
     (3, 1), None, "3 days after the calendar's day 1"),
    ("cycle 3 day 1 given two days early: cycle 3 has begun",
     None, (care_plan(), *course((1, 1), (2, 1), (2, 15)), isa(3, 1, shift=-2)), C1D1, "ICARIA",
     day_of(3, 1) - timedelta(days=2), (3, 1), None, None),
    ("cycle 2 day 1 not recorded, day 15 on time: the calendar holds",
     None, (care_plan(), *course((1, 1), (1, 8), (1, 15), (1, 22), (2, 15))), C1D1, "ICARIA", day_of(3, 1),
     (3, 1), None, None),
    ("a missing cycle 1 infusion changes nothing",
     None, (*course((1, 1), (1, 15), (1, 22), (2, 1)), POMALIDOMIDE), C1D1, "ICARIA", day_of(2, 3), (2, 3),
     None, None),
    ("older course of a previous line, with an enrolment date: ignored",
     None, (*course((1, 1), (1, 8), (2, 1), c1d1=OLD), *course((1, 1), (1, 8))), C1D1, None, day_of(1, 8),
     (1, 8), None, None),
    ("older course of a previous line, no enrolment date: the latest course",
     undated_subject(), (*course((1, 1), (1, 8), (2, 1), c1d1=OLD), *course((1, 1), (1, 8))), C1D1, None,
     day_of(1, 8), (1, 8), None, "taken for a previous line"),
    ("no enrolment date, only a previous line's course: dates past it have no cycle",
     undated_subject(), tuple(course((1, 1), (1, 8), (2, 1), c1d1=OLD)), OLD, None, day_of(1, 8), None, None,
     None),
    ("no enrolment date, a plan for a course not given yet: the plan",
     undated_subject(), (care_plan(), *course((1, 1), (1, 8), c1d1=OLD)), C1D1, "ICARIA", day_of(1, 8), (1, 8),
     None, "taken for a previous line"),
    ("no enrolment date, a pause of six weeks inside the course: cannot verify (pause or previous line)",
     undated_subject(), (*course((1, 1), (1, 8), (1, 15), (1, 22), (2, 1), (2, 15)),
                         isa(3, 1, shift=42), isa(3, 15, shift=42)), None, None, day_of(3, 1) + timedelta(days=45),
     None, "cannot be told from a previous line", None),
    ("no enrolment date, one course", undated_subject(), tuple(course(*STANDARD)), C1D1, None, day_of(3, 1),
     (3, 1), None, None),
    ("two CarePlans of the regimen: the earliest start",
     None, (care_plan(start=day_of(2, 1), plan_id="cp-2"), care_plan()), C1D1, "ICARIA", day_of(3, 1), (3, 1),
     None, None),
    ("two CarePlans of different regimens: cannot verify",
     None, (care_plan(), care_plan("ikema-arm-b", plan_id="cp-2")), None, None, day_of(3, 1), None,
     "more than one regimen", None),
    ("CarePlan of the other arm: cannot verify", None, (care_plan("icaria-arm-a"), *course(*STANDARD)), None,
     "ICARIA", day_of(3, 1), None, "arm A version of ICARIA, the ResearchSubject says arm B", None),
    ("isatuximab with effectivePeriod",
     None, ({**{k: v for k, v in isa(1, 1).items() if k != "effectiveDateTime"},
             "effectivePeriod": {"start": "2026-09-01T08:00:00+02:00", "end": "2026-09-01T12:00:00+02:00"}},),
     C1D1, None, day_of(1, 8), (1, 8), None, None),
    ("C1D1 from an order's bounds", None, (isa_order(C1D1),), C1D1, None, day_of(3, 1), (3, 1), None, None),
    ("an order with doNotPerform is no order", None, (isa_order(C1D1, doNotPerform=True),), None, None,
     day_of(3, 1), None, "no isatuximab administration or order", None),
    ("isatuximab on the enrolment day counts",
     research_subject(enrolled=C1D1.isoformat()), (isa(1, 1),), C1D1, None, day_of(1, 8), (1, 8), None, None),
]


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_cycle_clock(knowledge, row):
    _, subject, resources, c1d1, regimen, probe, position, problem, doubt = row
    clock = clock_of(knowledge, subject or research_subject(), *resources)
    assert clock.c1d1 == c1d1
    assert (clock.regimen.key if clock.regimen else None) == regimen
    if regimen is None and problem is None:
        assert {r.key for r in clock.regimens} == {"ICARIA", "IKEMA"}
    assert clock.position(probe) == position
    if problem is None:
        assert clock.problems == ()
    else:
        assert any(problem in p for p in clock.problems), clock.problems
    if doubt is None:
        assert clock.doubts == ()
    else:
        assert any(doubt in d for d in clock.doubts), clock.doubts


def test_a_date_the_record_cannot_place_says_why(knowledge):
    clock = clock_of(knowledge, research_subject(), care_plan(), *DELAYED_C2)
    why = clock.unclear(day_of(3, 3))
    assert "cycle 3 day 3 by the calendar" in why and "cycle 2 day 24" in why and "2026-10-06" in why
    assert clock.unclear(day_of(3, 15)) is None
    assert clock.cycle_start(2) == date(2026, 10, 6) and clock.cycle_start(3) is None
    stale = clock_of(knowledge, undated_subject(), *course((1, 1), (1, 8), c1d1=OLD))
    assert "may not be in the study course" in stale.unclear(day_of(1, 8))


@pytest.mark.parametrize(("status", "counts"), [
    ("completed", True), ("in-progress", True), ("on-hold", True), ("stopped", True),
    ("not-done", False), ("entered-in-error", False), ("unknown", False),
])
def test_which_administration_statuses_were_given(knowledge, status, counts):
    clock = clock_of(knowledge, research_subject(), isa(1, 1, status=status))
    assert (clock.c1d1 == C1D1) is counts
    assert (clock.c1d1 is None) is not counts


# End to end through order-sign: (id, call kwargs, expected rules, text in the first card's detail).
E2E = [
    ("plan entered weeks late, order in cycle 3: warning",
     {"plans": (care_plan(start=day_of(1, 22)),), "administrations": tuple(course(*STANDARD)),
      "orders": (dex_order(day_of(3, 5)),)}, ["dex-after-cycle-2"],
     "cycles counted from the first isatuximab given, 2026-09-01: the treatment plan starts 21 days later"),
    ("plan earlier than a late start, correct cycle 2 order: no card",
     {"plans": (care_plan(start=C1D1 - timedelta(days=7)),), "administrations": tuple(course(*STANDARD)),
      "orders": (dex_order(day_of(2, 22)),)}, [], None),
    ("plan earlier, one infusion fitting both: cannot verify",
     {"administrations": (isa(1, 8),), "orders": (dex_order(day_of(3, 5)),)}, ["cannot-verify"],
     "a late start or a cycle 1 day 1 infusion missing"),
    ("delayed cycle 2, order in the unclear week: cannot verify",
     {"administrations": DELAYED_C2, "orders": (dex_order(day_of(3, 3)),)}, ["cannot-verify"],
     "the cycle of the order's first day is unclear"),
    ("delayed cycle 2, order in the unclear week: the card says the order's cycle is unclear",
     {"administrations": DELAYED_C2, "orders": (dex_order(day_of(3, 3)),)}, ["cannot-verify"],
     "2026-10-29 is cycle 3 day 3 by the calendar"),
    ("delayed cycle 2, order from cycle 2 ending in the unclear week: cannot verify, never silence",
     {"administrations": DELAYED_C2, "orders": (dex_order(day_of(2, 26), days=5),)},
     ["cannot-verify", "dex-dose-mismatch"], "the cycle of the order's last day is unclear"),
    ("delayed cycle 2, order once cycle 3 began by both counts: warning",
     {"administrations": DELAYED_C2, "orders": (dex_order(day_of(3, 15)),)}, ["dex-after-cycle-2"],
     "**Check:** cycle 2 may have been delayed"),
    ("cycle 3 day 1 given two days early, premedication that day: warning",
     {"administrations": (*course((1, 1), (2, 1), (2, 15)), isa(3, 1, shift=-2)),
      "orders": (dex_order(day_of(3, 1) - timedelta(days=2)),)}, ["dex-after-cycle-2"], None),
    ("no enrolment date, previous line two years earlier, correct cycle 1 order: no card",
     {"subjects": (undated_subject(),), "plans": (),
      "administrations": (*course((1, 1), (1, 8), (2, 1), c1d1=OLD), *course((1, 1), (1, 8)), POMALIDOMIDE),
      "orders": (dex_order(day_of(1, 8)),)}, [], None),
    ("no enrolment date, only the previous line's course: cannot verify",
     {"subjects": (undated_subject(),), "plans": (),
      "administrations": (*course((1, 1), (1, 8), (2, 1), c1d1=OLD),), "orders": (dex_order(),)},
     ["cannot-verify"], None),
    ("CarePlan of the other arm: cannot verify naming it",
     {"plans": (care_plan("icaria-arm-a"),), "orders": (dex_order(),)}, ["cannot-verify"],
     "arm A version of ICARIA"),
]


@pytest.mark.parametrize(("kwargs", "expected", "text"), [row[1:] for row in E2E], ids=[row[0] for row in E2E])
def test_through_order_sign(client, kwargs, expected, text):
    kwargs = {"plans": (care_plan(),), **kwargs}
    response = client.post("/cds-services/dex-free-order-sign", data=json.dumps(call(**kwargs)),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())
    cards = response.get_json()["cards"]
    assert [c["extension"]["dexfree"]["rule"] for c in cards] == expected
    if text:
        assert text in cards[0]["detail"]


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_a_clock_asked_again_answers_as_a_fresh_one(knowledge, row, monkeypatch):
    """The clock remembers the dates it placed and the cycles it started (a remembered clock serves a
    patient's calls): asked in any order, again, and past what it may remember, it answers as a clock that
    was never asked anything."""
    import random

    from cds_service.rules import cycles

    _, subject, resources, *_ = row
    monkeypatch.setattr(cycles, "_KNOWN_PER_CLOCK", 40)
    days = [C1D1 + timedelta(days=offset) for offset in range(-10, 140, 3)]
    questions = [("position", d) for d in days] + [("unclear", d) for d in days] + \
        [("cycle_start", c) for c in range(1, 9)]
    questions = questions * 2
    random.Random(7).shuffle(questions)
    asked = clock_of(knowledge, subject or research_subject(), *resources)
    for name, argument in questions:
        fresh = clock_of(knowledge, subject or research_subject(), *resources)
        assert getattr(asked, name)(argument) == getattr(fresh, name)(argument), (name, argument)
    assert len(asked._known) <= 40
