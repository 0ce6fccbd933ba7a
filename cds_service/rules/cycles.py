"""Regimen and cycle clock: which regimen the patient is on and where cycle 1 day 1 was, with the evidence.

Sources, best first: a CarePlan instantiating one of the published regimen PlanDefinitions (its
`period.start` is cycle 1 day 1); else the first isatuximab administration (then order) on or after
enrolment, with the stratum told by pomalidomide (ICARIA) or carfilzomib (IKEMA) given after enrolment.
Cycles are then counted with the regimen's own cycle lengths. Real cycles slip: isatuximab given on a day
the calendar does not expect is reported as a doubt, for the card to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import Regimen
from cds_service.rules.dates import local_date
from cds_service.rules.enrolment import Enrolment
from cds_service.rules.medication import match_drug

# CarePlan and request statuses that do not describe treatment.
VOID_PLAN = frozenset({"revoked", "entered-in-error", "draft"})
VOID_REQUEST = frozenset({"cancelled", "entered-in-error", "draft"})
VOID_ADMINISTRATION = frozenset({"not-done", "entered-in-error"})
# Isatuximab infusions moved by a day or two (weekends, bed availability) are not a sign of a delayed cycle.
INFUSION_SLACK_DAYS = 2
# Which drug tells the stratum.
STRATUM_DRUGS = {"pomalidomide": "ICARIA", "carfilzomib": "IKEMA"}


@dataclass(frozen=True)
class CycleClock:
    """The candidate regimens (one when the regimen is known, both of the arm otherwise) and cycle 1 day 1."""

    regimens: tuple[Regimen, ...]
    regimen_how: str
    c1d1: date | None
    c1d1_how: str
    evidence: tuple[str, ...]
    problems: tuple[str, ...] = ()
    doubts: tuple[str, ...] = ()

    @property
    def regimen(self) -> Regimen | None:
        return self.regimens[0] if len(self.regimens) == 1 else None

    def position(self, day: date) -> tuple[int, int] | None:
        """(cycle, day of cycle) of a date if every candidate regimen agrees; None before C1D1 or unknown."""
        if self.c1d1 is None or not self.regimens:
            return None
        places = {r.cycle_and_day((day - self.c1d1).days) for r in self.regimens}
        return places.pop() if len(places) == 1 else None

    def cycle_start(self, cycle: int) -> date | None:
        """The calendar date of day 1 of `cycle` (the same for every candidate, or None)."""
        if self.c1d1 is None or not self.regimens:
            return None
        offsets = {r.cycle_start(cycle) for r in self.regimens}
        return self.c1d1 + timedelta(days=offsets.pop()) if len(offsets) == 1 else None


def _administered_on(administration: Any, zone: ZoneInfo) -> date | None:
    if administration.effectiveDateTime is not None:
        return local_date(administration.effectiveDateTime, zone)
    if administration.effectivePeriod is not None:
        return local_date(administration.effectivePeriod.start, zone)
    return None


def _requested_on(request: Any, zone: ZoneInfo) -> date | None:
    for dosage in request.dosageInstruction or []:
        bounds = getattr(getattr(dosage.timing, "repeat", None), "boundsPeriod", None)
        if bounds is not None and bounds.start is not None:
            return local_date(bounds.start, zone)
    return local_date(request.authoredOn, zone)


def drug_events(
    record: PatientRecord, knowledge: Knowledge, drug: str, zone: ZoneInfo, since: date | None = None
) -> list[tuple[date, str, str]]:
    """(date, kind, reference) of administrations and orders of a drug, earliest first, from `since` on."""
    codes = knowledge.codes(drug)
    events = []
    for given in record.medication_administrations:
        if given.status not in VOID_ADMINISTRATION and match_drug(given, record, codes):
            day = _administered_on(given, zone)
            if day is not None:
                events.append((day, "administration", f"MedicationAdministration/{given.id}"))
    for request in record.medication_requests:
        if request.status not in VOID_REQUEST and match_drug(request, record, codes):
            day = _requested_on(request, zone)
            if day is not None:
                events.append((day, "order", f"MedicationRequest/{request.id}"))
    return sorted(e for e in events if since is None or e[0] >= since)


def _from_care_plans(
    record: PatientRecord, knowledge: Knowledge, arm: str, zone: ZoneInfo
) -> tuple[list[tuple[Regimen, date | None, str]], list[str]]:
    found, problems = [], []
    for plan in record.care_plans:
        if plan.status in VOID_PLAN:
            continue
        for canonical in plan.instantiatesCanonical or []:
            regimen = knowledge.regimen_for_canonical(canonical)
            if regimen is None:
                continue
            if regimen.arm != arm:
                problems.append(
                    f"CarePlan/{plan.id} follows the arm {regimen.arm} version of {regimen.key}, "
                    f"the ResearchSubject says arm {arm}"
                )
            start = local_date(plan.period.start, zone) if plan.period else None
            found.append((regimen, start, f"CarePlan/{plan.id}"))
    return found, problems


def cycle_clock(
    record: PatientRecord, knowledge: Knowledge, enrolled: Enrolment, zone: ZoneInfo
) -> CycleClock:
    """Regimen and cycle 1 day 1 for an enrolled patient whose arm is known (`enrolled.arm`)."""
    arm = enrolled.arm.key
    arm_regimens = tuple(r for r in knowledge.regimens if r.arm == arm)
    plans, problems = _from_care_plans(record, knowledge, arm, zone)
    evidence: list[str] = []
    if plans:
        keys = {regimen.key for regimen, _, _ in plans}
        evidence = [ref for _, _, ref in plans]
        if len(keys) > 1:
            problems.append(f"CarePlans name more than one regimen ({', '.join(sorted(keys))})")
            regimens: tuple[Regimen, ...] = ()
            regimen_how = "contradictory CarePlans"
        else:
            key = keys.pop()
            regimens = tuple(r for r in arm_regimens if r.key == key)
            regimen_how = f"{', '.join(evidence)} instantiates the {key} regimen"
        starts = [(start, ref) for _, start, ref in plans if start is not None]
        if starts:
            c1d1, ref = min(starts)
            clock = CycleClock(
                regimens=regimens,
                regimen_how=regimen_how,
                c1d1=c1d1,
                c1d1_how=f"{ref} period.start",
                evidence=tuple(evidence),
                problems=tuple(problems),
            )
            return _with_doubts(clock, record, knowledge, zone)
    else:
        regimens, regimen_how = _stratum_from_drugs(
            record, knowledge, arm_regimens, enrolled=enrolled, zone=zone, evidence=evidence
        )
    isatuximab = drug_events(record, knowledge, "isatuximab", zone, since=enrolled.enrolled_on)
    given = [e for e in isatuximab if e[1] == "administration"] or isatuximab
    if not given:
        problems.append(
            "no regimen CarePlan with a start date and no isatuximab administration or order after enrolment"
        )
        return CycleClock(
            regimens=regimens,
            regimen_how=regimen_how,
            c1d1=None,
            c1d1_how="unknown",
            evidence=tuple(evidence),
            problems=tuple(problems),
        )
    day, kind, ref = given[0]
    since = f" on or after enrolment ({enrolled.enrolled_on.isoformat()})" if enrolled.enrolled_on else ""
    clock = CycleClock(
        regimens=regimens,
        regimen_how=regimen_how,
        c1d1=day,
        c1d1_how=f"the first isatuximab {kind}{since}: {ref}",
        evidence=(*evidence, ref),
        problems=tuple(problems),
    )
    return _with_doubts(clock, record, knowledge, zone)


def _stratum_from_drugs(
    record: PatientRecord,
    knowledge: Knowledge,
    arm_regimens: tuple[Regimen, ...],
    *,
    enrolled: Enrolment,
    zone: ZoneInfo,
    evidence: list[str],
) -> tuple[tuple[Regimen, ...], str]:
    seen = {}
    for drug, key in STRATUM_DRUGS.items():
        events = drug_events(record, knowledge, drug, zone, since=enrolled.enrolled_on)
        if events:
            seen[key] = events[0][2]
    if len(seen) == 1:
        key, ref = next(iter(seen.items()))
        evidence.append(ref)
        return tuple(r for r in arm_regimens if r.key == key), f"{ref} ({key} drug given after enrolment)"
    how = "not recorded (no regimen CarePlan" + (", and both ICARIA and IKEMA drugs given)" if seen else ")")
    return arm_regimens, how


def _with_doubts(
    clock: CycleClock, record: PatientRecord, knowledge: Knowledge, zone: ZoneInfo
) -> CycleClock:
    """Isatuximab given where the calendar expects none hints at a delayed cycle: say so."""
    if clock.c1d1 is None or not clock.regimens:
        return clock
    doubts = []
    for day, kind, ref in drug_events(record, knowledge, "isatuximab", zone, since=clock.c1d1):
        if kind != "administration":
            continue
        place = clock.position(day)
        if place is None:
            continue
        cycle, cycle_day = place
        expected = set()
        for regimen in clock.regimens:
            block = regimen.block(cycle)
            for action in block.drug_actions("isatuximab") if block else ():
                expected |= set(action.days)
        if not any(abs(cycle_day - d) <= INFUSION_SLACK_DAYS for d in expected):
            doubts.append(
                f"isatuximab was given on {day.isoformat()} ({ref}), cycle {cycle} day {cycle_day} by "
                "the calendar, not an isatuximab day: a cycle may have been delayed"
            )
    return CycleClock(**{**clock.__dict__, "doubts": tuple(doubts[-1:])}) if doubts else clock
