"""Trial monitoring: the systemic dexamethasone a record shows, cycle by cycle, against the patient's arm.

A pure function from a PatientRecord and a date to findings (`monitor`), on the hooks' own rules: the
enrolment (rules/enrolment.py), cycle clock (rules/cycles.py) and situation (rules/dexamethasone.py), the
drug (`identify_drug`) and route and dose (rules/orders.py) read exactly as for a draft order.

What counts, by kind (decisions where the issue and protocol are silent):
- `given`: a MedicationAdministration not void for the cycle clock (completed, in progress, and also
  on-hold or stopped: started, so given), on its effective day;
- `dispensed`: a MedicationDispense completed or in progress, from the day handed over (else prepared) for
  its `daysSupply` (no supply stated: that day only, and in arm B's last cycle with dexamethasone a
  could-not-verify, since it may run on);
- `ordered`: a MedicationRequest not void (not cancelled, entered in error, draft, or "do not perform"),
  on the days its timing gives, else every day from its first to its last; an active order with no end
  runs until today;
- `reported`: a MedicationStatement (not "not taken", entered in error or intended): listed, and in arm B
  a could-not-verify when it falls in a cycle without dexamethasone — never a deviation on its own, and
  never enough for an arm A cycle.
Only systemic dexamethasone is read; local routes (eye, skin, …) are left out as the hooks leave them.

Findings:
- `arm-b-dex-after-cycle-2`: given, dispensed or ordered for a day of a cycle whose regimen gives none
  (a supply or an order begun earlier that runs into it counts), one per such cycle, from its first day;
- `arm-a-cycle-without-dex`: a cycle of an arm that gives dexamethasone in every cycle, over by today (its
  last day included), with none given, dispensed or ordered;
- `dose-differs`: a dose given (for the patient's age that day) or a day given that is not the regimen's;
- `cannot-verify`: what the record does not tell (arm, cycle 1 day 1, a date's cycle, a dose, a supply).
The cumulative dose is that of the administrations with a readable dose (what was given, as recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.cycles import VOID_ADMINISTRATION, VOID_REQUEST, CycleClock
from cds_service.rules.dates import age_on, local_date
from cds_service.rules.dexamethasone import (
    DEX,
    DOSE_TOLERANCE_MG,
    Situation,
    expected_dex,
    gives_dex,
    situation,
)
from cds_service.rules.medication import identify_drug, medication_of
from cds_service.rules.orders import dose_of, order_facts, route_of

GIVEN, DISPENSED, ORDERED, REPORTED = "given", "dispensed", "ordered", "reported"
KINDS = (GIVEN, DISPENSED, ORDERED, REPORTED)
DISPENSE_DONE = frozenset({"completed", "in-progress"})
STATEMENT_VOID = frozenset({"not-taken", "entered-in-error", "intended"})
ORDER_RUNS = frozenset({"active", "on-hold"})
# A covered span longer than this is cut (an order that runs on for years): enough to place it in cycles.
MAX_SPAN_DAYS = 400
ARM_B, ARM_A = "arm-b-dex-after-cycle-2", "arm-a-cycle-without-dex"
DOSE, CANNOT = "dose-differs", "cannot-verify"
FINDINGS = (ARM_B, ARM_A, DOSE, CANNOT)
SITE_NOT_RECORDED = "(site not recorded)"


@dataclass(frozen=True)
class DexEvent:
    """One systemic dexamethasone resource: its kind, days covered and dose as the record states them."""

    kind: str
    reference: str
    start: date
    last: date
    days: tuple[date, ...] | None  # the dosing days when stated; None: any day from start to last
    dose_mg: float | None
    dose_how: str | None
    route_how: str
    supply_unknown: bool = False  # a dispense or order whose last day is not stated

    def covered(self) -> list[date]:
        if self.days is not None:
            return list(self.days)
        span = min((self.last - self.start).days, MAX_SPAN_DAYS)
        return [self.start + timedelta(days=n) for n in range(span + 1)]


@dataclass(frozen=True)
class CycleEvent:
    """A DexEvent as it falls in one cycle: its first day there and how many of its days."""

    kind: str
    day: date
    cycle_day: int
    days: int
    dose_mg: float | None
    dose_how: str | None
    route_how: str
    starts: date  # the event's own first day (earlier for a supply begun in a previous cycle)


@dataclass(frozen=True)
class Finding:
    """One monitoring finding: what, where (cycle, day) and why, in plain words (no FHIR ids)."""

    code: str
    text: str
    cycle: int | None = None
    cycle_day: int | None = None
    day: date | None = None
    kinds: tuple[str, ...] = ()
    starts: tuple[date, ...] = ()  # first days of the events behind it (to match an order's card)


@dataclass(frozen=True)
class CycleExposure:
    """One cycle: its dates, whether the regimen gives dexamethasone, and what the record shows."""

    cycle: int
    start: date | None
    end: date | None
    expected: bool | None
    events: tuple[CycleEvent, ...]
    given_mg: float
    cumulative_mg: float


@dataclass(frozen=True)
class Monitoring:
    """One enrolled patient's dexamethasone exposure (rows name the study subject, never the patient)."""

    subject_id: str | None
    site: str
    status: str
    arm: str | None
    regimen: str | None
    regimen_how: str
    c1d1: date | None
    c1d1_how: str
    cycle: int | None
    cycle_day: int | None
    cycles: tuple[CycleExposure, ...]
    findings: tuple[Finding, ...]
    given_mg: float
    undated: int = 0
    unreadable_doses: int = 0
    events: tuple[DexEvent, ...] = field(default=(), repr=False)


def _site(situation_: Situation, record: PatientRecord) -> str:
    """The enrolment's site: a ResearchSubject extension named "site", else the study's only site."""
    subject = situation_.enrolled.subject
    for extension in getattr(subject, "extension", None) or []:
        if "site" not in (extension.url or "").rstrip("/").rsplit("/", 1)[-1].lower():
            continue
        value = _named(extension.valueReference) or extension.valueString
        value = value or _named(extension.valueCodeableConcept) or getattr(extension.valueIdentifier, "value",
                                                                           None)
        if value:
            return str(value)
    reference = getattr(subject, "study", None)
    study = record.resolve(reference.reference, within=subject) if reference and reference.reference else None
    sites = [_named(s) for s in getattr(study, "site", None) or []]
    return sites[0] if len(sites) == 1 and sites[0] else SITE_NOT_RECORDED


def _named(value: Any) -> str | None:
    """A Reference's display (else its reference) or a CodeableConcept's text or first display."""
    if value is None:
        return None
    if getattr(value, "display", None) or getattr(value, "reference", None):
        return value.display or value.reference
    if getattr(value, "text", None):
        return value.text
    return next((c.display or c.code for c in getattr(value, "coding", None) or [] if c.display or c.code),
                None)


def _is_dex(resource: Any, record: PatientRecord, knowledge: Knowledge) -> tuple[bool, bool]:
    """(is dexamethasone, its medication could not be read): a drug code decides over names."""
    decision = identify_drug(resource, record, knowledge.codes(DEX))
    if decision.found:
        return True, False
    medication = medication_of(resource, record)
    return False, decision.other is None and (medication.unresolved or not medication.known)


def _period(start: Any, end: Any, zone: ZoneInfo) -> tuple[date | None, date | None]:
    return local_date(start, zone), local_date(end, zone)


def _dated(resource: Any, kind: str, record: PatientRecord, knowledge: Knowledge, *, today: date,
           zone: ZoneInfo) -> tuple[date | None, date | None, tuple[date, ...] | None, bool]:
    """(first day, last day, dosing days if stated, last day unknown) of one resource of a kind."""
    if kind == GIVEN:
        period = resource.effectivePeriod
        day = local_date(resource.effectiveDateTime, zone)
        day = day or (local_date(period.start, zone) if period else None)
        return day, day, (day,) if day else None, False
    if kind == DISPENSED:
        day = local_date(resource.whenHandedOver, zone) or local_date(resource.whenPrepared, zone)
        supply = resource.daysSupply
        unit = (supply.code or supply.unit or "d") if supply is not None else None
        if day is None or supply is None or supply.value is None or unit not in ("d", "day", "days", "wk"):
            return day, day, None, True
        length = int(supply.value) * (7 if unit == "wk" else 1)
        return day, day + timedelta(days=max(length, 1) - 1), None, False
    if kind == ORDERED:
        facts = order_facts(resource, record, knowledge, today, zone)
        if facts.start_how.startswith("today"):
            return None, None, None, False  # an order with no date at all: not placed on today
        if facts.open_ended:
            last = max(today, facts.start) if resource.status in ORDER_RUNS else facts.start
            return facts.start, last, None, False
        days = facts.days if facts.days else None
        return facts.start, facts.last_day, days, facts.end_unknown
    start, end = (_period(resource.effectivePeriod.start, resource.effectivePeriod.end, zone)
                  if resource.effectivePeriod else (local_date(resource.effectiveDateTime, zone), None))
    if start is None:
        return None, None, None, False
    if end is None:
        end = max(today, start) if resource.status == "active" and resource.effectivePeriod else start
    return start, end, None, False


def _sources(record: PatientRecord) -> list[tuple[str, Any]]:
    found = [(GIVEN, r) for r in record.medication_administrations if r.status not in VOID_ADMINISTRATION]
    found += [(DISPENSED, r) for r in record.medication_dispenses if r.status in DISPENSE_DONE]
    found += [(ORDERED, r) for r in record.medication_requests
              if r.status not in VOID_REQUEST and r.doNotPerform is not True]
    found += [(REPORTED, r) for r in record.medication_statements if r.status not in STATEMENT_VOID]
    return found


def dex_events(record: PatientRecord, knowledge: Knowledge, today: date,
               zone: ZoneInfo) -> tuple[list[DexEvent], int, int]:
    """The systemic dexamethasone of the record; how many are undated; how many medications are unreadable."""
    events, undated, unreadable = [], 0, 0
    for kind, resource in _sources(record):
        is_dex, unknown = _is_dex(resource, record, knowledge)
        if not is_dex:
            unreadable += unknown
            continue
        route, route_how, _ = route_of(resource, record, knowledge)
        if route == "local":
            continue
        start, last, days, supply_unknown = _dated(resource, kind, record, knowledge, today=today, zone=zone)
        if start is None:
            undated += 1
            continue
        dose, dose_how, _ = dose_of(resource, record)
        events.append(DexEvent(kind, f"{resource.get_resource_type()}/{resource.id}", start, last or start,
                               days, dose, dose_how, route_how, supply_unknown))
    events.sort(key=lambda e: (e.start, e.kind))
    return events, undated, unreadable


def _cycle_end(clock: CycleClock, cycle: int) -> date | None:
    following = clock.cycle_start(cycle + 1)
    return following - timedelta(days=1) if following else None


@dataclass
class _Cycle:
    events: list[CycleEvent] = field(default_factory=list)
    refs: list[DexEvent] = field(default_factory=list)


def _horizon(where: Situation, today: date, zone: ZoneInfo) -> date:
    """The last day monitored: today, or the end of study participation when it has ended."""
    period = getattr(where.enrolled.subject, "period", None)
    ended = local_date(period.end, zone) if period is not None and period.end else None
    return min(today, ended) if ended and not where.enrolled.on_treatment else today


def monitor(record: PatientRecord, knowledge: Knowledge, today: date, zone: ZoneInfo) -> Monitoring | None:
    """The patient's dexamethasone exposure and findings; None when not enrolled (or only screened)."""
    where = situation(record, knowledge, today, zone)
    if where is None or where.enrolled.phase == "screening":
        return None
    enrolled, clock = where.enrolled, where.clock
    events, undated, unreadable = dex_events(record, knowledge, today, zone)
    findings: list[Finding] = []
    base = {"subject_id": enrolled.subject_identifier, "site": _site(where, record),
            "status": enrolled.status, "arm": enrolled.arm.key if enrolled.arm else None, "undated": undated,
            "events": tuple(events)}
    if enrolled.subject_identifier is None:
        findings.append(Finding(CANNOT, "the enrolment has no study subject identifier: the study team "
                                        "cannot find this subject"))
    if clock is None or clock.c1d1 is None:
        why = "; ".join(enrolled.problems if clock is None else clock.problems) or "not recorded"
        what = "the arm is unknown" if clock is None else "cycle 1 day 1 is unknown"
        findings.append(Finding(CANNOT, f"{what} ({why}): the dexamethasone of the record "
                                        f"({len(events)} item(s)) cannot be placed in cycles"))
        return Monitoring(**base, regimen=clock.regimen.key if clock and clock.regimen else None,
                          regimen_how=clock.regimen_how if clock else "", c1d1=None,
                          c1d1_how=clock.c1d1_how if clock else "unknown", cycle=None, cycle_day=None,
                          cycles=(), findings=tuple(findings), given_mg=0.0)
    stop = where.stop_cycle
    arm_b = stop is not None
    last_day = _horizon(where, today, zone)
    cycles: dict[int, _Cycle] = {}
    unclear: list[tuple[DexEvent, date, str]] = []
    places: dict[date, tuple[int, int] | None] = {}  # the same days recur (given and ordered): placed once
    for event in events:
        placed: dict[int, list[tuple[date, int]]] = {}
        for day in event.covered():
            if day < clock.c1d1:
                continue
            if day not in places:
                places[day] = clock.position(day)
            place = places[day]
            if place is None:
                why = clock.unclear(day)
                if why and arm_b and event.kind != REPORTED:
                    unclear.append((event, day, why))
                continue
            placed.setdefault(place[0], []).append((day, place[1]))
        for cycle, days in placed.items():
            slot = cycles.setdefault(cycle, _Cycle())
            slot.events.append(CycleEvent(event.kind, days[0][0], days[0][1], len(days), event.dose_mg,
                                          event.dose_how, event.route_how, event.start))
            slot.refs.append(event)
    current = where.cycle or 0
    last_cycle = max([current, *cycles]) if cycles or current else 0
    age_birth = getattr(record.patient, "birthDate", None) if record.patient else None
    rows, cumulative, unreadable_doses = [], 0.0, 0
    dose_gaps: set[str] = set()
    for number in range(1, last_cycle + 1):
        slot = cycles.get(number, _Cycle())
        expected = gives_dex(clock, number)
        start, end = clock.cycle_start(number), _cycle_end(clock, number)
        given = [e for e in slot.events if e.kind == GIVEN]
        mg = sum(e.dose_mg for e in given if e.dose_mg is not None)
        unreadable_doses += sum(e.dose_mg is None for e in given)
        cumulative += mg
        rows.append(CycleExposure(number, start, end, expected, tuple(slot.events), mg, cumulative))
        findings += _cycle_findings(number, slot, expected, start=start, end=end, last_day=last_day,
                                    arm_b=arm_b)
        if expected:
            findings += _dose_findings(clock, number, given, age_birth, dose_gaps)
    findings += _unclear_findings(unclear)
    findings += _supply_findings(events, clock, stop)
    if undated and arm_b:
        findings.append(Finding(CANNOT, f"{undated} dexamethasone item(s) of the record have no date: their "
                                        "cycle cannot be told"))
    if unreadable and arm_b:
        findings.append(Finding(CANNOT, f"{unreadable} medication item(s) name a medication the record does "
                                        "not describe: they may be dexamethasone"))
    findings += [Finding(CANNOT, f"dose not checked: {why}") for why in sorted(dose_gaps)]
    if unreadable_doses:
        findings.append(Finding(CANNOT, f"{unreadable_doses} dexamethasone administration(s) without a "
                                        "readable dose: the cumulative dose leaves them out"))
    return Monitoring(**base, regimen=clock.regimen.key if clock.regimen else None,
                      regimen_how=clock.regimen_how, c1d1=clock.c1d1, c1d1_how=clock.c1d1_how,
                      cycle=where.cycle, cycle_day=where.cycle_day,
                      cycles=tuple(rows), findings=tuple(findings), given_mg=cumulative,
                      unreadable_doses=unreadable_doses)


def _cycle_findings(number: int, slot: _Cycle, expected: bool | None, *, start: date | None,
                    end: date | None, last_day: date, arm_b: bool) -> list[Finding]:
    """Arm B: dexamethasone in a cycle without it; an arm giving it in every cycle: a cycle without it."""
    acted = sorted((e for e in slot.events if e.kind != REPORTED), key=lambda e: e.day)
    reported = [e for e in slot.events if e.kind == REPORTED]
    if expected is False and acted:
        first = acted[0]
        kinds = tuple(dict.fromkeys(e.kind for e in acted))
        return [Finding(ARM_B, f"dexamethasone {first.kind} {first.day.isoformat()}, cycle {number} day "
                               f"{first.cycle_day} — possible deviation, tell the study team",
                        number, first.cycle_day, first.day, kinds, tuple(sorted({e.starts for e in acted})))]
    if expected is False and reported:
        first = min(reported, key=lambda e: e.day)
        return [Finding(CANNOT, f"dexamethasone reported taken {first.day.isoformat()}, cycle {number} day "
                                f"{first.cycle_day}, a cycle without it: check with the patient and the team",
                        number, first.cycle_day, first.day, (REPORTED,))]
    if expected and not arm_b and not acted:
        if end is None or start is None:
            if start is not None and start <= last_day:
                return [Finding(CANNOT, f"the dates of cycle {number} cannot be told (a delayed cycle): "
                                        "its dexamethasone is not checked", number)]
            return []
        if end > last_day:
            return []
        also = " (only reported taken)" if reported else ""
        return [Finding(ARM_A, f"no dexamethasone given or ordered in cycle {number} ({start.isoformat()} to "
                               f"{end.isoformat()}){also} — tell the study team", number, None, end)]
    return []


def _dose_findings(clock: CycleClock, number: int, given: list[CycleEvent], birth: Any,
                   gaps: set[str]) -> list[Finding]:
    """Each dose given that is not the regimen's (for the age that day), or given on another day."""
    found = []
    for event in given:
        dose, days = expected_dex(clock, number, age_on(birth, event.day))
        if dose is None:
            gaps.add("the patient's age or the regimen is unknown and the regimen's dose depends on it")
            continue
        wrong_dose = event.dose_mg is not None and abs(event.dose_mg - dose.value) > DOSE_TOLERANCE_MG
        off_day = event.cycle_day not in days
        if wrong_dose or off_day:
            what = [f"{event.dose_how} instead of {dose.describe()}"] if wrong_dose else []
            what += [f"on day {event.cycle_day}, not a dexamethasone day ({', '.join(map(str, days))})"] \
                if off_day else []
            found.append(Finding(DOSE, f"dexamethasone given {event.day.isoformat()}, cycle {number} day "
                                       f"{event.cycle_day}: {'; '.join(what)}", number, event.cycle_day,
                                 event.day, (GIVEN,), (event.starts,)))
    return found


def _unclear_findings(unclear: list[tuple[DexEvent, date, str]]) -> list[Finding]:
    """Arm B: dexamethasone on days the delays leave without a cycle (one finding per item)."""
    seen, found = set(), []
    for event, day, why in unclear:
        if event.reference in seen:
            continue
        seen.add(event.reference)
        found.append(Finding(CANNOT, f"dexamethasone {event.kind} {day.isoformat()}: its cycle cannot be "
                                     f"told ({why})", None, None, day, (event.kind,), (event.start,)))
    return found


def _supply_findings(events: list[DexEvent], clock: CycleClock, stop: int | None) -> list[Finding]:
    """Arm B: a supply or order in the last cycle with dexamethasone whose last day is not stated."""
    if stop is None or stop < 2:
        return []
    found = []
    for event in events:
        place = clock.position(event.start)
        if event.supply_unknown and place and place[0] == stop - 1:
            found.append(Finding(CANNOT, f"dexamethasone {event.kind} {event.start.isoformat()}, cycle "
                                         f"{place[0]} day {place[1]}, does not say how long it lasts: it may "
                                         f"run into cycle {stop}", place[0], place[1], event.start,
                                 (event.kind,), (event.start,)))
    return found


def chart_findings(record: PatientRecord, knowledge: Knowledge, today: date,
                   zone: ZoneInfo) -> tuple[Finding, ...]:
    """For the trial-status card: dexamethasone given, dispensed or ordered in a cycle without it, or (arm A)
    the current cycle's dexamethasone missing by its last day."""
    found = monitor(record, knowledge, today, zone)
    if found is None:
        return ()
    return tuple(f for f in found.findings if f.code == ARM_B or (f.code == ARM_A and f.cycle == found.cycle))
