"""The dexamethasone rules for patients on NCT06561854: pure functions from a record and a date to findings.

For each systemic dexamethasone draft order of an enrolled patient on study treatment:
- `dex-after-cycle-2`: arm B, the order starts in a cycle whose regimen gives no dexamethasone;
- `dex-extends-past-cycle-2`: arm B, it starts in a cycle with dexamethasone but its timing, number of
  doses or supply runs into a cycle without (or nothing ends it);
- `dex-dose-mismatch`: any arm, the dose for the patient's age or the days differ from the regimen;
- `cannot-verify`: the record cannot tell the arm, the regimen, cycle 1 day 1, the dose, or the drug.
Cycles and doses come from the knowledge (plan_definitions/); when the regimen is unknown, both regimens of
the arm are tried and an answer is given only where they agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import DoseOption, Regimen
from cds_service.rules.cycles import CycleClock, cycle_clock
from cds_service.rules.dates import age_on
from cds_service.rules.enrolment import Enrolment, enrolment, enrolment_doubt
from cds_service.rules.medication import identify_drug, medication_of
from cds_service.rules.orders import OrderFacts, order_facts

DEX = "dexamethasone"
# How a call gets its cycle clock: `cycle_clock` itself, or the runtime's rules/memo.ClockMemo.
ClockOf = Callable[[PatientRecord, Knowledge, Enrolment, ZoneInfo], CycleClock]
# Draft orders in these statuses are not being ordered (order-sign may re-fire on signed orders: they count).
NOT_ORDERED = frozenset({"cancelled", "entered-in-error", "stopped", "completed"})


def not_given(order: Any) -> bool:
    """Modifier elements first: `doNotPerform` ("do not give") or a status that means it is not ordered."""
    return order.doNotPerform is True or order.status in NOT_ORDERED
# Doses within this many mg of the regimen's are the same dose (rounding in the EHR's conversions).
DOSE_TOLERANCE_MG = 0.5


@dataclass(frozen=True)
class DexFinding:
    """One rule's finding on one order, with everything the card needs to explain itself."""

    rule: str
    order_ref: str
    enrolled: Enrolment | None
    facts: OrderFacts | None = None
    clock: CycleClock | None = None
    cycle: int | None = None
    cycle_day: int | None = None
    end_cycle: int | None = None
    stop_cycle: int | None = None  # first cycle without dexamethasone (arm B)
    stop_date: date | None = None  # its day 1
    expected: DoseOption | None = None
    expected_days: tuple[int, ...] = ()
    age: int | None = None
    infusion_day: bool = False
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = field(default=())

    @property
    def arm(self) -> str | None:
        return self.enrolled.arm.key if self.enrolled and self.enrolled.arm else None

    @property
    def regimen(self) -> str | None:
        return self.clock.regimen.key if self.clock and self.clock.regimen else None

    @property
    def checked_against(self) -> tuple[Regimen, ...]:
        """The regimens the order was checked against: the call's site's adaptation where it has one."""
        return self.clock.regimens if self.clock else ()


@dataclass(frozen=True)
class Situation:
    """The patient's trial situation on a date: enrolment, cycle clock, and where that date falls."""

    enrolled: Enrolment
    clock: CycleClock | None
    cycle: int | None
    cycle_day: int | None
    stop_cycle: int | None
    stop_date: date | None


def candidate_orders(record: PatientRecord, selections: tuple[str, ...]) -> list[Any]:
    """The MedicationRequests being ordered; on order-select only the selected ones (all, if none matches)."""
    orders = [
        o
        for o in record.draft_orders
        if o.get_resource_type() == "MedicationRequest" and not not_given(o)
    ]
    if selections:
        chosen = [
            o
            for o in orders
            if f"MedicationRequest/{o.id}" in selections or any(s.endswith(f"/{o.id}") for s in selections)
        ]
        return chosen or orders
    return orders


def _stop(clock: CycleClock) -> tuple[int | None, date | None]:
    stops = {r.first_cycle_without(DEX) for r in clock.regimens}
    if len(stops) != 1:
        return None, None
    stop = stops.pop()
    return stop, clock.cycle_start(stop) if stop else None


def situation(record: PatientRecord, knowledge: Knowledge, day: date, zone: ZoneInfo,
              clock_of: ClockOf = cycle_clock) -> Situation | None:
    """Where the patient stands in the trial on `day`; None if not enrolled in the study."""
    enrolled = enrolment(record, knowledge, zone)
    if enrolled is None:
        return None
    if enrolled.arm is None:
        return Situation(enrolled, None, None, None, None, None)
    clock = clock_of(record, knowledge, enrolled, zone)
    place = clock.position(day)
    stop, stop_date = _stop(clock)
    return Situation(enrolled, clock, *(place or (None, None)), stop, stop_date)


def _gives(clock: CycleClock, cycle: int) -> bool | None:
    answers = {r.gives(DEX, cycle) for r in clock.regimens}
    return answers.pop() if len(answers) == 1 else None


def _expected(
    clock: CycleClock, cycle: int, age: int | None
) -> tuple[DoseOption | None, tuple[int, ...], bool]:
    """The regimen's dexamethasone dose and days in a cycle if all candidates agree; whether age decides."""
    doses, days, by_age = set(), set(), False
    for regimen in clock.regimens:
        block = regimen.block(cycle)
        action = block.drug(DEX) if block else None
        if action is None:
            return None, (), False
        by_age = by_age or len(action.options) > 1
        dose = action.dose_for_age(age)
        doses.add((dose.value, dose.unit) if dose else None)
        days.add(action.days)
        chosen = dose
    if len(doses) != 1 or len(days) != 1 or None in doses:
        return None, (), by_age
    return chosen, days.pop(), by_age


def _infusion_day(clock: CycleClock, cycle: int, cycle_day: int) -> bool:
    for regimen in clock.regimens:
        block = regimen.block(cycle)
        if block and any(cycle_day in a.days for a in block.drug_actions("isatuximab")):
            return True
    return False


def _dex_order(order: Any, record: PatientRecord, knowledge: Knowledge) -> tuple[bool, bool]:
    """(is dexamethasone, the drug could not be told); a drug code decides over names (`identify_drug`)."""
    decision = identify_drug(order, record, knowledge.codes(DEX))
    if decision.found:
        return True, False
    if decision.other:
        return False, False
    medication = medication_of(order, record)
    return False, medication.unresolved or not medication.known


def _mentions_dex(raw: dict[str, Any], knowledge: Knowledge) -> bool:
    """Whether an order too broken to parse names dexamethasone anywhere (its codes or text)."""
    text = json.dumps(raw, ensure_ascii=False)
    codes = knowledge.codes(DEX)
    return bool(codes.match_text(text)) or any(
        codes.has_code(c.get("system"), c.get("code")) for c in _codings(raw)
    )


def _codings(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [value] if "code" in value and "system" in value else []
        return found + [c for v in value.values() for c in _codings(v)]
    if isinstance(value, list):
        return [c for v in value for c in _codings(v)]
    return []


def orders_could_be_dex(
    record: PatientRecord, knowledge: Knowledge, selections: tuple[str, ...] = ()
) -> bool:
    """Whether `evaluate_orders` could find anything, told from the draft orders alone (`draft_record`).

    False when no unreadable draft names dexamethasone and every order being written names its drug in
    the order itself (`medicationCodeableConcept`: no Medication to look up elsewhere in the record) and
    is told to be another drug: then no rule fires whatever the enrolment, arm or history, and the order
    hooks need not read them. An order given by `medicationReference` may be anything until its
    Medication is found: True.
    """
    if any(_mentions_dex(raw, knowledge) for raw in record.unreadable_orders):
        return True
    return any(
        order.medicationCodeableConcept is None or _dex_order(order, record, knowledge) != (False, False)
        for order in candidate_orders(record, selections)
    )


def evaluate_orders(
    record: PatientRecord,
    knowledge: Knowledge,
    today: date,
    zone: ZoneInfo,
    selections: tuple[str, ...] = (),
    *,
    clock_of: ClockOf = cycle_clock,
) -> list[DexFinding]:
    """The findings for the draft orders of an order-select / order-sign call (`clock_of`: ClockOf)."""
    orders = candidate_orders(record, selections)
    enrolled = enrolment(record, knowledge, zone)
    if enrolled is None:
        return _enrolment_unreadable(orders, record, knowledge, today, zone)
    if not enrolled.on_treatment:
        return []
    findings = []
    for raw in record.unreadable_orders:
        if _mentions_dex(raw, knowledge):
            findings.append(
                DexFinding(
                    "cannot-verify",
                    "an unreadable draft order",
                    enrolled,
                    missing=("a dexamethasone order could not be read",),
                    notes=("a draft order naming dexamethasone is not valid FHIR R4",),
                    evidence=(enrolled.reference,),
                )
            )
    clock = clock_of(record, knowledge, enrolled, zone) if enrolled.arm else None
    for order in orders:
        is_dex, unknown_drug = _dex_order(order, record, knowledge)
        if not is_dex:
            if unknown_drug and (enrolled.arm is None or enrolled.arm.key == "B"):
                ref = f"MedicationRequest/{order.id}"
                findings.append(
                    DexFinding(
                        "cannot-verify",
                        ref,
                        enrolled,
                        clock=clock,
                        missing=("the ordered medication could not be read",),
                        notes=(f"the medication of {ref} could not be read",),
                        evidence=(ref, enrolled.reference),
                    )
                )
            continue
        facts = order_facts(order, record, knowledge, today, zone)
        if facts.route == "local":
            continue
        findings += _order_findings(facts, enrolled, clock, record, knowledge)
    return findings


def _enrolment_unreadable(
    orders: list[Any], record: PatientRecord, knowledge: Knowledge, today: date, zone: ZoneInfo
) -> list[DexFinding]:
    """No readable enrolment in the study, but one the record cannot read may be it (`enrolment_doubt`).
    Each systemic dexamethasone order cannot be verified (an arm B patient's would need a warning);
    without such a subject, nothing."""
    doubt = enrolment_doubt(record, knowledge)
    if doubt is None:
        return []
    return [
        DexFinding(
            "cannot-verify",
            f.reference,
            None,
            facts=f,
            evidence=(*f.evidence, *doubt.evidence),
            missing=doubt.missing,
            notes=doubt.notes,
        )
        for f in _systemic_dex(orders, record, knowledge, today, zone)
    ]


def _systemic_dex(
    orders: list[Any], record: PatientRecord, knowledge: Knowledge, today: date, zone: ZoneInfo
) -> list[OrderFacts]:
    facts = [
        order_facts(o, record, knowledge, today, zone) for o in orders if _dex_order(o, record, knowledge)[0]
    ]
    return [f for f in facts if f.route == "systemic"]


def _order_findings(
    facts: OrderFacts,
    enrolled: Enrolment,
    clock: CycleClock | None,
    record: PatientRecord,
    knowledge: Knowledge,
) -> list[DexFinding]:
    base = {"order_ref": facts.reference, "enrolled": enrolled, "facts": facts, "clock": clock}
    evidence = [*facts.evidence, enrolled.reference, *(clock.evidence if clock else ())]
    if enrolled.arm is None:
        return [
            DexFinding(
                "cannot-verify",
                **base,
                missing=("arm unknown",),
                notes=enrolled.problems,
                evidence=tuple(evidence),
            )
        ]
    missing, notes = [], list(clock.problems)
    place = clock.position(facts.start)
    if clock.c1d1 is None:
        missing.append("cycle 1 day 1 unknown")
    elif place is None and facts.start >= clock.c1d1:
        why = clock.unclear(facts.start)
        missing.append("cycle of the order's first day unclear" if why else "regimen unknown")
        notes += [why] if why else []
    if missing:
        return [
            DexFinding(
                "cannot-verify",
                **base,
                missing=tuple(missing),
                notes=tuple(notes),
                evidence=tuple(evidence),
            )
        ]
    if place is None:
        return _begun_before_c1d1(facts, clock, base, tuple(evidence))
    cycle, cycle_day = place
    stop, stop_date = _stop(clock)
    common = {
        **base,
        "cycle": cycle,
        "cycle_day": cycle_day,
        "stop_cycle": stop,
        "stop_date": stop_date,
        "notes": clock.doubts,
        "evidence": tuple(evidence),
        "infusion_day": _infusion_day(clock, cycle, cycle_day),
    }
    gives = _gives(clock, cycle)
    if gives is False:
        return [DexFinding("dex-after-cycle-2", **common)]
    findings = _runs_past(facts, clock, common) if gives and stop is not None else []
    findings += _dose_findings(facts, clock, cycle, record, common)
    return findings


def _runs_past(facts: OrderFacts, clock: CycleClock, common: dict[str, Any]) -> list[DexFinding]:
    """Arm B: whether an order begun in a cycle with dexamethasone runs into the first cycle without."""
    end_place = clock.position(facts.last_day)
    if facts.open_ended or (end_place and _gives(clock, end_place[0]) is False):
        end_cycle = end_place[0] if end_place and not facts.open_ended else None
        return [DexFinding("dex-extends-past-cycle-2", **common, end_cycle=end_cycle)]
    if end_place is None and not facts.end_unknown:
        # The last day has no cycle (a delay makes it cycle 2 or 3, or the course is stale): never silence.
        why = clock.unclear(facts.last_day)
        return [
            DexFinding(
                "cannot-verify",
                **{**common, "notes": (*common.get("notes", ()), *([why] if why else []))},
                missing=("cycle of the order's last day unclear" if why else "regimen unknown",),
            )
        ]
    if facts.end_unknown:
        return [
            DexFinding(
                "cannot-verify",
                **{**common, "notes": ("it gives a number of doses without saying how often",)},
                missing=("the order's last day is not stated",),
            )
        ]
    return []


def _begun_before_c1d1(
    facts: OrderFacts, clock: CycleClock, base: dict[str, Any], evidence: tuple[str, ...]
) -> list[DexFinding]:
    """An order begun before cycle 1 day 1: only its part inside study treatment is checked.

    The arm rules apply from cycle 1 day 1, so a course ending before it, or within the cycles that give
    dexamethasone, gets no card (and no dose card: its dose was not chosen for the regimen); one running
    into arm B's first cycle without dexamethasone (or with no end) gets `dex-extends-past-cycle-2`.
    """
    stop, stop_date = _stop(clock)
    if stop is None or (not facts.open_ended and not facts.end_unknown and facts.last_day < clock.c1d1):
        return []
    common = {**base, "cycle": None, "cycle_day": None, "stop_cycle": stop, "stop_date": stop_date,
              "notes": clock.doubts, "evidence": evidence}
    return _runs_past(facts, clock, common)


def _dose_findings(
    facts: OrderFacts,
    clock: CycleClock,
    cycle: int,
    record: PatientRecord,
    common: dict[str, Any],
) -> list[DexFinding]:
    birth = getattr(record.patient, "birthDate", None) if record.patient else None
    age = age_on(birth, facts.start)
    expected, days, by_age = _expected(clock, cycle, age)
    if expected is None:
        why = (
            "the patient's age is unknown and the regimen's dose depends on it"
            if by_age and age is None
            else "the regimens possible for this patient give different doses"
        )
        short = "age unknown" if by_age and age is None else "regimen unknown"
        return [
            DexFinding(
                "cannot-verify",
                **{**common, "notes": (why,)},
                age=age,
                missing=(f"dose not checked, {short}",),
            )
        ]
    if facts.dose_mg is None:
        return [
            DexFinding(
                "cannot-verify",
                **{**common, "notes": (facts.dose_problem,)},
                expected=expected,
                expected_days=days,
                age=age,
                missing=("dose not readable",),
            )
        ]
    dose_differs = abs(facts.dose_mg - expected.value) > DOSE_TOLERANCE_MG
    off_days = _off_days(facts, clock, days)
    if dose_differs or off_days:
        notes = (
            (f"doses on cycle days {', '.join(str(d) for d in off_days)}, outside the regimen's days",)
            if off_days
            else ()
        )
        return [
            DexFinding(
                "dex-dose-mismatch",
                **{**common, "notes": notes},
                expected=expected,
                expected_days=days,
                age=age,
            )
        ]
    return []


def _off_days(facts: OrderFacts, clock: CycleClock, days: tuple[int, ...]) -> list[int]:
    """Cycle days the order doses on that are not the regimen's dexamethasone days (one-off: its day)."""
    given = (
        facts.days
        if facts.days is not None
        else ((facts.start,) if facts.end is None and not facts.open_ended else ())
    )
    off = []
    for day in given:
        place = clock.position(day)
        if place and _gives(clock, place[0]) and place[1] not in days:
            off.append(place[1])
    return sorted(set(off))


def last_dex_day(finding: DexFinding) -> date | None:
    """The last day dexamethasone may be given in arm B: the day before the first cycle without it."""
    return finding.stop_date - timedelta(days=1) if finding.stop_date else None


def gives_dex(clock: CycleClock, cycle: int) -> bool | None:
    """Whether the regimen gives dexamethasone in a cycle (None when the candidate regimens disagree)."""
    return _gives(clock, cycle)


def expected_dex(clock: CycleClock, cycle: int, age: int | None) -> tuple[DoseOption | None, tuple[int, ...]]:
    """The regimen's dexamethasone dose (for the age) and days in a cycle, when every candidate agrees."""
    dose, days, _ = _expected(clock, cycle, age)
    return dose, days
