"""Regimen and cycle clock: which regimen the patient is on, where cycle 1 day 1 was, and the cycle of a date.

Decisions (issue 12), each said on the cards as a doubt, or as a problem that makes the rules answer
cannot-verify (`c1d1` None):
- The study course. Isatuximab on or after the enrolment date (the enrolment day counts). Without an
  enrolment date, the latest course of isatuximab, courses being split by a gap longer than a cycle (the
  regimen's own cycle length); the earlier ones are taken for a previous line (doubt), and a date more
  than a cycle after the course's last isatuximab has no cycle (it may not be the study course). A gap of
  at most PAUSE_OR_LINE_CYCLES cycles is as likely a pause inside the study (toxicity) as a previous line:
  restarting the clock there would hide an arm B warning, so it is a problem (cannot-verify), not a guess.
- Given administrations are what happened; orders are intentions, read only when nothing was given.
  Not given: MedicationAdministration `not-done`, `entered-in-error`, and `unknown` (not known to have
  happened); `in-progress`, `on-hold` and `stopped` infusions were started, so their day happened. A
  MedicationRequest with `doNotPerform` is not an order of the drug.
- Cycle 1 day 1. A CarePlan instantiating a published regimen PlanDefinition names the regimen and, by
  `period.start` (the earliest of several), cycle 1 day 1, checked against the first isatuximab given:
  within INFUSION_SLACK_DAYS they agree (the plan's date is kept). A plan later than that is the day the
  plan was entered: cycle 1 day 1 is the first given (doubt naming both dates). A plan earlier means a
  late start or a cycle 1 day 1 infusion missing from the record: the isatuximab given decides when it
  fits one calendar better (fewer infusions off an isatuximab day), else cannot-verify naming both
  dates. A plan more than the slack before enrolment is not this course's (doubt, or a problem when
  nothing was given). A CarePlan of the other arm's version contradicts the ResearchSubject: problem.
- Delayed cycles. Each cycle's day 1 is taken from the isatuximab given: the first infusion at or after
  the day the calendar expects the next cycle begins it; later by more than the slack, it is a delayed
  cycle and the cycles after it are counted from it (doubt). Where that count and the plain calendar
  from cycle 1 day 1 put a date in cycles that give dexamethasone differently (in arm B, cycle 2 and
  cycle 3), the date has no cycle — cannot-verify naming the dates — unless the
  cycle's own day 1 was given on or before it (an early day 1: the cycle has begun).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
# Administrations that did not happen, or are not known to have (see the module docstring).
VOID_ADMINISTRATION = frozenset({"not-done", "entered-in-error", "unknown"})
# Isatuximab infusions moved by a day or two (weekends, bed availability) are not a sign of a delayed cycle.
INFUSION_SLACK_DAYS = 2
# How many placed dates and cycle starts a clock remembers: a call places a few, bulk monitoring hundreds.
_KNOWN_PER_CLOCK = 4096
# Without an enrolment date, isatuximab resumed within this many cycles of a stop may be a pause in the
# study course (toxicity) as well as a new line: a service decision, not a protocol number.
PAUSE_OR_LINE_CYCLES = 3
# Which drug tells the stratum.
STRATUM_DRUGS = {"pomalidomide": "ICARIA", "carfilzomib": "IKEMA"}

Event = tuple[date, str, str]  # (day, "administration" | "order", reference)
NO_START = "no regimen CarePlan with a start date and no isatuximab administration or order after enrolment"


@dataclass(frozen=True)
class _Anchor:
    """Day 1 of a cycle as given: `start` numbers its days, the next cycle is expected from `base`."""

    cycle: int
    start: date
    base: date
    late: int = 0  # days after the calendar's day 1, when more than the slack
    ref: str = ""


@dataclass(frozen=True)
class CycleClock:
    """The candidate regimens (one when the regimen is known, both of the arm otherwise) and cycle 1 day 1.

    `given`: the isatuximab administrations of the study course (day, reference), from which each
    cycle's day 1 is taken. `stale_after`: without an enrolment date, the last day the course is known
    to run (later dates have no cycle).
    """

    regimens: tuple[Regimen, ...]
    regimen_how: str
    c1d1: date | None
    c1d1_how: str
    evidence: tuple[str, ...]
    problems: tuple[str, ...] = ()
    doubts: tuple[str, ...] = ()
    given: tuple[tuple[date, str], ...] = ()
    stale_after: date | None = None
    # anchors() by regimen: every date placed re-reads them (bulk monitoring places hundreds).
    _anchors: dict[str, list[_Anchor]] = field(default_factory=dict, init=False, compare=False, repr=False)
    # _place and _start by (regimen, date or cycle): a remembered clock (rules/memo.py) serves a patient's
    # calls, each placing the same few dates (an order's start, the stop cycle's day 1). Bounded per clock.
    _known: dict[tuple[str, Any], Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def regimen(self) -> Regimen | None:
        return self.regimens[0] if len(self.regimens) == 1 else None

    def position(self, day: date) -> tuple[int, int] | None:
        """(cycle, day of cycle) of a date if every candidate regimen agrees; None before C1D1 or unknown."""
        places = set()
        for regimen in self.regimens if self.c1d1 is not None else ():
            place, _ = self._place(regimen, day)
            if place is None:
                return None
            places.add(place)
        return places.pop() if len(places) == 1 else None

    def unclear(self, day: date) -> str | None:
        """Why a date on or after cycle 1 day 1 has no cycle although the regimen is known; None otherwise."""
        for regimen in self.regimens if self.c1d1 is not None else ():
            _, why = self._place(regimen, day)
            if why:
                return why
        return None

    def cycle_start(self, cycle: int) -> date | None:
        """The date of day 1 of `cycle` (the same for every candidate, or None when the record cannot say)."""
        starts = {self._start(r, cycle) for r in self.regimens} if self.c1d1 is not None else set()
        return starts.pop() if len(starts) == 1 else None

    def anchors(self, regimen: Regimen) -> list[_Anchor]:
        """Day 1 of cycle 1 and of each later cycle whose day-1 isatuximab was given, in order."""
        known = self._anchors.get(regimen.canonical)
        if known is None:
            known = self._anchors[regimen.canonical] = self._anchors_of(regimen)
        return known

    def _anchors_of(self, regimen: Regimen) -> list[_Anchor]:
        anchors = [_Anchor(1, self.c1d1, self.c1d1)]
        for day, ref in self.given:
            last = anchors[-1]
            block = regimen.block(last.cycle)
            if block is None:
                break
            expected = last.base + timedelta(days=block.length_days)
            late = (day - expected).days
            if late < -INFUSION_SLACK_DAYS:
                continue  # an infusion of the running cycle
            if late <= INFUSION_SLACK_DAYS or _on_a_later_day(regimen, last.cycle + 1, late):
                # On time, or a later infusion of the next cycle with its day 1 not recorded: the calendar
                # holds (the side that keeps an arm B warning, if day 1 was in fact this late).
                anchors.append(_Anchor(last.cycle + 1, min(day, expected), expected, ref=ref))
            else:
                anchors.append(_Anchor(last.cycle + 1, day, day, late, ref))
        return anchors

    def _explicit(self, regimen: Regimen, day: date) -> tuple[tuple[int, int] | None, _Anchor | None]:
        """The cycle of a date counted from the given day-1 infusions, and the anchor it is counted from."""
        anchors = self.anchors(regimen)
        found = [i for i, a in enumerate(anchors) if a.start <= day]
        if not found:
            return None, None
        anchor, later = anchors[found[-1]], anchors[found[-1] + 1:]
        block = regimen.block(anchor.cycle)
        # Before the next cycle's given day 1 (a delay), the cycle runs on.
        if later or (block is not None and day < anchor.base + timedelta(days=block.length_days)):
            return (anchor.cycle, (day - anchor.start).days + 1), anchor
        return regimen.cycle_and_day((day - anchor.base).days + regimen.cycle_start(anchor.cycle)), anchor

    def _place(self, regimen: Regimen, day: date) -> tuple[tuple[int, int] | None, str | None]:
        return self._remembered(("place", regimen.canonical, day), self._place_of, regimen, day)

    def _remembered(self, key: tuple[Any, ...], compute: Callable[..., Any], *args: Any) -> Any:
        # A clock's fields are frozen: the answer for a key never changes. Threads may compute one twice.
        if key in self._known:
            return self._known[key]
        answer = compute(*args)
        if len(self._known) < _KNOWN_PER_CLOCK:
            self._known[key] = answer
        return answer

    def _place_of(self, regimen: Regimen, day: date) -> tuple[tuple[int, int] | None, str | None]:
        calendar = regimen.cycle_and_day((day - self.c1d1).days)
        if calendar is None:
            return None, None
        if self.stale_after is not None and day > self.stale_after:
            return None, (f"no isatuximab is recorded after {self.stale_after.isoformat()} and the enrolment "
                          f"has no date: {day.isoformat()} may not be in the study course")
        explicit, anchor = self._explicit(regimen, day)
        if explicit is None:
            return calendar, None
        if explicit[0] == calendar[0] or _alike(regimen, explicit[0], calendar[0]):
            return explicit, None
        if explicit[0] > calendar[0] and anchor.cycle == explicit[0]:
            return explicit, None  # its day-1 infusion was given: the cycle has begun
        return None, (f"{day.isoformat()} is cycle {calendar[0]} day {calendar[1]} by the calendar from "
                      f"cycle 1 day 1 ({self.c1d1.isoformat()}), but cycle {explicit[0]} day {explicit[1]} "
                      f"counting from the isatuximab given (cycle {anchor.cycle} day 1 on "
                      f"{anchor.start.isoformat()})")

    def _start(self, regimen: Regimen, cycle: int) -> date | None:
        return self._remembered(("start", regimen.canonical, cycle), self._start_of, regimen, cycle)

    def _start_of(self, regimen: Regimen, cycle: int) -> date | None:
        anchors = self.anchors(regimen)
        given = next((a.start for a in anchors if a.cycle == cycle), None)
        if given is not None:
            return given
        last = anchors[-1]
        if cycle < last.cycle:
            return None  # a cycle whose day 1 was not recorded, between recorded ones
        start = last.base + timedelta(days=regimen.cycle_start(cycle) - regimen.cycle_start(last.cycle))
        calendar = self.c1d1 + timedelta(days=regimen.cycle_start(cycle))
        if start == calendar or _alike(regimen, cycle, cycle - 1):
            return start
        return None  # delayed: the day the next cycle definition begins is not known until it is given


def _alike(regimen: Regimen, one: int, other: int) -> bool:
    """Whether two cycles give dexamethasone alike (the rules answer the same in either)."""
    first, second = regimen.block(one), regimen.block(other)
    if first is second:
        return True
    dex = [block.drug("dexamethasone") if block else None for block in (first, second)]
    if None in dex:
        return dex[0] is dex[1]
    return dex[0].days == dex[1].days and dex[0].options == dex[1].options


def _on_a_later_day(regimen: Regimen, cycle: int, offset: int) -> bool:
    """Whether `offset` days after a cycle's day 1 is near another isatuximab day of that cycle."""
    block = regimen.block(cycle)
    days = {d for a in block.drug_actions("isatuximab") for d in a.days if d > 1} if block else set()
    return any(abs(offset + 1 - d) <= INFUSION_SLACK_DAYS for d in days)


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
) -> list[Event]:
    """(date, kind, reference) of administrations and orders of a drug, earliest first, from `since` on."""
    codes = knowledge.codes(drug)
    events = []
    for given in record.medication_administrations:
        if given.status not in VOID_ADMINISTRATION and match_drug(given, record, codes):
            day = _administered_on(given, zone)
            if day is not None:
                events.append((day, "administration", f"MedicationAdministration/{given.id}"))
    for request in record.medication_requests:
        if request.status in VOID_REQUEST or request.doNotPerform:
            continue  # a modifier: "do not give" is no order of the drug
        if match_drug(request, record, codes):
            day = _requested_on(request, zone)
            if day is not None:
                events.append((day, "order", f"MedicationRequest/{request.id}"))
    return sorted(e for e in events if since is None or e[0] >= since)


def _cycle_days(regimens: tuple[Regimen, ...]) -> int:
    """The longest cycle of the candidate regimens: a longer gap in isatuximab ends a course."""
    return max(b.length_days for r in regimens for b in r.blocks)


def _latest_course(events: list[Event], gap: int) -> tuple[list[Event], list[Event]]:
    """(the latest course, what came before it): a course ends after `gap` days without the drug."""
    for i in range(len(events) - 1, 0, -1):
        if (events[i][0] - events[i - 1][0]).days > gap:
            return events[i:], events[:i]
    return events, []


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


def _misfits(regimen: Regimen, c1d1: date, given: list[Event]) -> int:
    """How many infusions fall off an isatuximab day of the plain calendar from `c1d1` (or before it)."""
    count = 0
    for day, _, _ in given:
        place = regimen.cycle_and_day((day - c1d1).days)
        block = regimen.block(place[0]) if place else None
        days = {d for a in block.drug_actions("isatuximab") for d in a.days} if block else set()
        count += not any(abs(place[1] - d) <= INFUSION_SLACK_DAYS for d in days)
    return count


@dataclass
class _Start:
    """Where cycle 1 day 1 comes from, as it is being decided."""

    day: date | None
    how: str
    refs: list[str]
    doubts: list[str]
    problems: list[str]


def _reconcile(
    plan: tuple[date, str] | None,
    given: list[Event],
    orders: list[Event],
    regimens: tuple[Regimen, ...],
    enrolled_on: date | None,
) -> _Start:
    """Cycle 1 day 1 from the plan's start and the study course's isatuximab (see the module docstring)."""
    slack = INFUSION_SLACK_DAYS
    first = given[0] if given else None
    if plan is not None and enrolled_on is not None and (enrolled_on - plan[0]).days > slack:
        doubt = (f"{plan[1]} starts on {plan[0].isoformat()}, before the enrolment on "
                 f"{enrolled_on.isoformat()}: it is not taken for cycle 1 day 1")
        if first is None and not orders:
            return _Start(None, "unknown", [plan[1]], [], [doubt])
        plan = None
        start = _reconcile(None, given, orders, regimens, enrolled_on)
        start.doubts.insert(0, doubt)
        return start
    if plan is not None and first is not None:
        day, ref = plan
        apart = (first[0] - day).days
        if abs(apart) <= slack:
            return _Start(day, f"{ref} period.start", [ref], [], [])
        if apart < 0:
            return _Start(first[0], f"the first isatuximab given: {first[2]}", [ref, first[2]], [
                f"{ref} starts on {day.isoformat()}, {-apart} days after isatuximab was first given "
                f"({first[0].isoformat()}, {first[2]}): cycles are counted from what was given"], [])
        # The plan is earlier: a late start, or a cycle 1 day 1 infusion missing from the record.
        late = min(_misfits(r, first[0], given) for r in regimens)
        missing = min(_misfits(r, day, given) for r in regimens)
        if late < missing:
            return _Start(first[0], f"the first isatuximab given: {first[2]}", [ref, first[2]], [
                f"{ref} starts on {day.isoformat()}, but isatuximab was first given {apart} days later "
                f"({first[0].isoformat()}, {first[2]}): cycles are counted from what was given"], [])
        if missing < late:
            return _Start(day, f"{ref} period.start", [ref, first[2]], [
                f"no isatuximab is recorded on cycle 1 day 1 ({day.isoformat()}, {ref}); the infusions given "
                f"from {first[0].isoformat()} fit this calendar"], [])
        return _Start(None, "unknown", [ref, first[2]], [], [
            f"{ref} starts on {day.isoformat()} but isatuximab was first given on {first[0].isoformat()} "
            f"({first[2]}): a late start or a cycle 1 day 1 infusion missing from the record, the record "
            "does not tell which"])
    if plan is not None:
        return _Start(plan[0], f"{plan[1]} period.start", [plan[1]], [], [])
    event = first or (orders[0] if orders else None)
    if event is None:
        return _Start(None, "unknown", [], [], [NO_START])
    since = f" on or after enrolment ({enrolled_on.isoformat()})" if enrolled_on else ""
    return _Start(event[0], f"the first isatuximab {event[1]}{since}: {event[2]}", [event[2]], [], [])


def cycle_clock(
    record: PatientRecord, knowledge: Knowledge, enrolled: Enrolment, zone: ZoneInfo
) -> CycleClock:
    """Regimen and cycle 1 day 1 for an enrolled patient whose arm is known (`enrolled.arm`)."""
    arm = enrolled.arm.key
    arm_regimens = tuple(r for r in knowledge.regimens if r.arm == arm)
    plans, problems = _from_care_plans(record, knowledge, arm, zone)
    regimens, regimen_how = arm_regimens, ""
    if plans:
        keys = {regimen.key for regimen, _, _ in plans}
        refs = ", ".join(ref for _, _, ref in plans)
        if len(keys) > 1:
            problems.append(f"CarePlans name more than one regimen ({', '.join(sorted(keys))})")
            regimens, regimen_how = (), "contradictory CarePlans"
        else:
            key = keys.pop()
            regimens = tuple(r for r in arm_regimens if r.key == key)
            regimen_how = f"{refs} instantiates the {key} regimen"
    starts = sorted((start, ref) for _, start, ref in plans if start is not None)
    plan = starts[0] if starts else None

    doubts: list[str] = []
    events = drug_events(record, knowledge, "isatuximab", zone, since=enrolled.enrolled_on)
    stale_after = None
    if enrolled.enrolled_on is None and events:
        gap = _cycle_days(regimens or arm_regimens)
        course, before = _latest_course(events, gap)
        if plan is not None and (plan[0] - course[-1][0]).days > gap:
            course, before = [], events  # the plan is for a course not given yet
        if before and plan is None and course and \
                (course[0][0] - before[-1][0]).days <= PAUSE_OR_LINE_CYCLES * gap:
            # A pause of a few cycles (toxicity) inside the study looks like a new course: restarting the
            # clock there would hide an arm B warning, so neither side is taken.
            stopped, restarted = before[-1][0].isoformat(), course[0][0].isoformat()
            problems.append(f"the enrolment has no date and isatuximab stopped on {stopped}, then restarted "
                            f"on {restarted}: a pause in the study course cannot be told from a previous "
                            "line")
        elif before:
            doubts.append(f"the enrolment has no date: isatuximab given or ordered from "
                          f"{before[0][0].isoformat()} to {before[-1][0].isoformat()} is taken for a "
                          f"previous line (more than {gap} days before the next)")
        if course and plan is None:
            stale_after = course[-1][0] + timedelta(days=gap + INFUSION_SLACK_DAYS)
        events = course
    given = [e for e in events if e[1] == "administration"]
    orders = [e for e in events if e[1] == "order"]
    start = _reconcile(plan, given, orders, regimens or arm_regimens, enrolled.enrolled_on)
    doubts += start.doubts
    problems += start.problems
    evidence = list(dict.fromkeys([ref for _, _, ref in plans] + start.refs))

    if not plans:
        # Without an enrolment date, pomalidomide or carfilzomib of a previous line must not tell the stratum.
        since = enrolled.enrolled_on
        if since is None and start.day is not None:
            since = start.day - timedelta(days=INFUSION_SLACK_DAYS)
        regimens, regimen_how = _stratum_from_drugs(
            record, knowledge, arm_regimens, since=since, zone=zone, evidence=evidence)
    c1d1 = start.day if not problems else None
    clock = CycleClock(
        regimens=regimens,
        regimen_how=regimen_how,
        c1d1=c1d1,
        c1d1_how=start.how if c1d1 else "unknown",
        evidence=tuple(evidence),
        problems=tuple(problems),
        doubts=tuple(doubts),
        given=tuple((day, ref) for day, _, ref in given if c1d1 is not None and day > c1d1),
        stale_after=stale_after,
    )
    return _with_doubts(clock)


def _stratum_from_drugs(
    record: PatientRecord,
    knowledge: Knowledge,
    arm_regimens: tuple[Regimen, ...],
    *,
    since: date | None,
    zone: ZoneInfo,
    evidence: list[str],
) -> tuple[tuple[Regimen, ...], str]:
    seen = {}
    for drug, key in STRATUM_DRUGS.items():
        events = drug_events(record, knowledge, drug, zone, since=since)
        if events:
            seen[key] = events[0][2]
    if len(seen) == 1:
        key, ref = next(iter(seen.items()))
        evidence.append(ref)
        return tuple(r for r in arm_regimens if r.key == key), f"{ref} ({key} drug given in the study course)"
    how = "not recorded (no regimen CarePlan" + (", and both ICARIA and IKEMA drugs given)" if seen else ")")
    return arm_regimens, how


def _with_doubts(clock: CycleClock) -> CycleClock:
    """Delayed cycles, infusions off the calendar, and the dates whose cycle the record cannot tell."""
    if clock.c1d1 is None or not clock.regimens:
        return clock
    doubts: list[str] = []
    regimen = clock.regimens[0]
    for anchor in clock.anchors(regimen):
        if anchor.late:
            doubts.append(
                f"cycle {anchor.cycle} day 1 isatuximab was given on {anchor.start.isoformat()} "
                f"({anchor.ref}), {anchor.late} days after the calendar's day 1: cycle {anchor.cycle} may "
                "have been delayed, later cycles are counted from it"
            )
    off = []
    for day, ref in clock.given:
        place = clock.position(day)
        if place is None:
            continue
        cycle, cycle_day = place
        expected = set()
        for candidate in clock.regimens:
            block = candidate.block(cycle)
            for action in block.drug_actions("isatuximab") if block else ():
                expected |= set(action.days)
        if not any(abs(cycle_day - d) <= INFUSION_SLACK_DAYS for d in expected):
            off.append(
                f"isatuximab was given on {day.isoformat()} ({ref}), cycle {cycle} day {cycle_day}, not an "
                "isatuximab day: a cycle may have been delayed"
            )
    doubts += off[-1:]
    doubts += _unclear_windows(clock)
    return replace(clock, doubts=(*clock.doubts, *doubts)) if doubts else clock


def _unclear_windows(clock: CycleClock) -> list[str]:
    """Each run of dates the delays leave without a cycle, with why (the first date's reason)."""
    delays = [a for r in clock.regimens for a in clock.anchors(r) if a.late]
    if not delays:
        return []
    longest = _cycle_days(clock.regimens)
    last_block = max(b.first for r in clock.regimens for b in r.blocks)
    reach = sum(a.late for a in delays) + longest * (last_block + 1)
    end = max(a.start for a in delays) + timedelta(days=reach)
    windows, run = [], None
    day = min(a.start for a in delays)
    while day <= end:
        why = clock.unclear(day)
        if why and run is None:
            run = (day, why)
        elif not why and run is not None:
            windows.append(f"from {run[0].isoformat()} to {(day - timedelta(days=1)).isoformat()} the cycle "
                           f"cannot be told: {run[1]}")
            run = None
        day += timedelta(days=1)
    if run is not None:
        windows.append(f"from {run[0].isoformat()} the cycle cannot be told: {run[1]}")
    return windows
