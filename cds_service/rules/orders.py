"""What a MedicationRequest asks for: route (systemic or local), first and last day, dose in mg, and days.

Everything is read from the structured order; of its free text, only the route text, the dose form and the
product name say the route (never an indication, instruction or note). Where the order does not say, the
fact is None and the rules say "could not verify". The route and dose readers serve the other medication
resources too (`route_of`, `dose_of`: a dispense's `dosageInstruction`, a statement's or an administration's
`dosage`), for trial monitoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.dates import local_date
from cds_service.rules.medication import medication_of

# UCUM time units as days (months and years are not used by dexamethasone schedules: refused below).
_UNIT_DAYS = {"d": 1, "wk": 7, "h": 1 / 24, "min": 1 / 1440, "s": 1 / 86400}
_MASS_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
_UNIT_DOSE = frozenset(
    {"tab", "tablet", "tablets", "{tbl}", "{tablet}", "comprimé", "cp", "each", "1", "{each}"}
)
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The FHIR R4 timing-abbreviation value set (v3-GTSAbbreviation) as frequency, period and UCUM unit; MO
# (monthly) repeats but is not a number of days.
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
_GTS_PATTERNS: dict[str, tuple[int, float, str]] = {
    "QD": (1, 1, "d"), "BID": (2, 1, "d"), "TID": (3, 1, "d"), "QID": (4, 1, "d"), "AM": (1, 1, "d"),
    "PM": (1, 1, "d"), "BED": (1, 1, "d"), "QOD": (1, 2, "d"), "WK": (1, 1, "wk"), "MO": (1, 1, "mo"),
    "Q1H": (1, 1, "h"), "Q2H": (1, 2, "h"), "Q3H": (1, 3, "h"), "Q4H": (1, 4, "h"), "Q6H": (1, 6, "h"),
    "Q8H": (1, 8, "h"),
}
# Most occurrences expanded for one order: a year of daily doses is plenty to place it in the cycles.
MAX_OCCURRENCES = 400
# Longest span an order is followed for (100 years): anything longer ends far past every cycle anyway.
MAX_SPAN_DAYS = 36500


@dataclass(frozen=True)
class OrderFacts:
    """One order as the rules see it; every `*_how` says which element a fact came from, for the card."""

    reference: str
    label: str
    route: str  # "systemic" or "local"
    route_how: str
    route_doubt: str | None  # what the order says that disagrees, when taken as systemic despite it
    start: date
    start_how: str
    end: date | None  # last day it would be given; None with open_ended, or when only a single day is known
    end_how: str | None
    open_ended: bool
    end_unknown: bool  # repeats (a number of doses) without anything telling its last day
    dose_mg: float | None
    dose_how: str | None  # what the order says, as written
    dose_problem: str | None
    days: tuple[date, ...] | None  # the days it would be given, when the timing can be expanded
    evidence: tuple[str, ...] = field(default=())

    @property
    def last_day(self) -> date:
        return self.end or self.start


def _text(value: Any) -> str:
    return getattr(value, "text", None) or ""


def _concept_texts(concept: Any) -> list[str]:
    if concept is None:
        return []
    return [_text(concept), *[c.display or "" for c in getattr(concept, "coding", None) or []]]


_KIND = {"routes-local": "local", "routes-systemic": "systemic"}


def dosages(resource: Any) -> list[Any]:
    """The dosages of a request or dispense (`dosageInstruction`), statement or administration (`dosage`)."""
    for element in ("dosageInstruction", "dosage"):
        value = getattr(resource, element, None)
        if value is not None:
            return list(value) if isinstance(value, list) else [value]
    return []


def _route(order: Any, medication: Any, knowledge: Knowledge) -> tuple[str, str, str | None]:
    """Systemic or local, how it was decided, and what was ambiguous if the order's own words disagree.

    Only what the order says about its own route and product is read: the coded route, then the route text,
    the dose form and the product (its systemic product code, its name). Words of an indication, reason,
    instruction (`dosage.text`, `patientInstruction`, `additionalInstruction`) or note never make an order
    local. Local only when everything that speaks says local; when some say local and others systemic, the
    order is taken as systemic (a missed arm B warning is the worse error) and the disagreement is returned.
    """
    local, systemic = knowledge.codes("routes-local"), knowledge.codes("routes-systemic")
    words = knowledge.terminology.words("routes-local", "routes-systemic")
    said: list[tuple[str, str]] = []  # (local|systemic, how), strongest first
    routes = [d.route for d in dosages(order) if getattr(d, "route", None) is not None]
    for route in routes:
        for coding in route.coding or []:
            name = coding.display or coding.code
            if local.has_code(coding.system, coding.code):
                said.append(("local", f"route: {name} (coded)"))
            elif systemic.has_code(coding.system, coding.code):
                said.append(("systemic", f"route: {name} (coded)"))
    for route in routes:
        for text in _concept_texts(route):
            said += [(_KIND[h.label], f'route: "{text}"') for h in words.find(text)]
    concept = medication.concept if not isinstance(medication.concept, dict) else None
    if concept is not None and knowledge.codes("dexamethasone-systemic-products").match_codings(
        concept.coding or []
    ):
        said.append(("systemic", "a systemic product code"))
    form = getattr(medication.resource, "form", None)
    for where, texts in (("dose form", _concept_texts(form)),
                         ("product", [*_concept_texts(concept), medication.label()])):
        for text in texts:
            said += [(_KIND[h.label], f'"{h.text}" in the {where}') for h in words.find(text)]
    if not said:
        return "systemic", "route not stated: taken as systemic", None
    kinds = {kind for kind, _ in said}
    if len(kinds) == 1:
        return said[0][0], said[0][1], None
    first_local = next(how for kind, how in said if kind == "local")
    first_systemic = next(how for kind, how in said if kind == "systemic")
    doubt = f"the order says both local ({first_local}) and systemic ({first_systemic}): taken as systemic"
    return "systemic", first_systemic, doubt


def _start(order: Any, today: date, zone: ZoneInfo) -> tuple[date, str]:
    starts = []
    for dosage in order.dosageInstruction or []:
        timing = dosage.timing
        if timing is None:
            continue
        repeat = timing.repeat
        if repeat is not None and repeat.boundsPeriod is not None and repeat.boundsPeriod.start is not None:
            starts.append(local_date(repeat.boundsPeriod.start, zone))
        starts += [local_date(e, zone) for e in timing.event or []]
    starts = [s for s in starts if s is not None]
    if starts:
        return min(starts), "the dosage timing"
    authored = local_date(order.authoredOn, zone)
    if authored is not None:
        return authored, "the order date (authoredOn)"
    return today, "today (the order gives no start)"


def _code_pattern(timing: Any) -> tuple[int, float, str] | None:
    """The (frequency, period, unit) a `Timing.code` of the FHIR timing-abbreviation value set stands for."""
    for coding in getattr(timing.code, "coding", None) or []:
        if coding.system in (None, GTS) and (coding.code or "").upper() in _GTS_PATTERNS:
            return _GTS_PATTERNS[coding.code.upper()]
    return None


def _interval_days(repeat: Any, timing: Any = None) -> float | None:
    """Days between two doses of a `frequency` per `period periodUnit` schedule; None if not expandable.

    A repeat without frequency or period takes them from the timing's code (e.g. WK), and one that only says
    when in the day (`when`, `timeOfDay`) is daily.
    """
    if repeat is not None and repeat.dayOfWeek:
        return None
    if repeat is not None and repeat.period is not None:
        frequency, period, unit = repeat.frequency or 1, repeat.period, repeat.periodUnit
    elif timing is not None and _code_pattern(timing):
        frequency, period, unit = _code_pattern(timing)
    elif repeat is not None and (repeat.when or repeat.timeOfDay):
        frequency, period, unit = 1, 1, "d"
    else:
        return None
    if unit not in _UNIT_DAYS:
        return None
    interval = float(period) * _UNIT_DAYS[unit] / frequency
    # A period of 0, a negative or a sub-minute one is no schedule: expanding it would spin or overflow.
    return interval if math.isfinite(interval) and interval >= _UNIT_DAYS["min"] else None


def _after(start: date, days: float) -> date | None:
    """`start` plus `days`, capped at MAX_SPAN_DAYS (that far runs past any cycle); None for nonsense."""
    if not math.isfinite(days) or days < 0:
        return None
    return start + timedelta(days=math.floor(min(days, MAX_SPAN_DAYS)))


def _expand(
    repeat: Any, start: date, end: date | None, interval: float | None
) -> tuple[tuple[date, ...] | None, date | None]:
    """The days a timing.repeat gives doses on, from `start` to `end` or its count; and its last day."""
    count = repeat.count
    if repeat.dayOfWeek:
        if end is None and count is None:
            return None, None
        wanted = {_DAY_NAMES.index(d) for d in repeat.dayOfWeek if d in _DAY_NAMES}
        days, day = [], start
        while (
            len(days) < MAX_OCCURRENCES
            and (end is None or day <= end)
            and (count is None or len(days) < count)
        ):
            if day.weekday() in wanted:
                days.append(day)
            day += timedelta(days=1)
        return tuple(days), days[-1] if days else start
    if interval is None:
        return None, end
    if count is None and end is None:
        return None, None
    days: list[date] = []
    # Bounded by doses and by steps: several doses a day share a day, so steps can outnumber days.
    for index in range(MAX_OCCURRENCES * 48):
        day = _after(start, index * interval)
        if day is None or (end is not None and day > end) or (count is not None and index >= count):
            break
        if not days or days[-1] != day:
            days.append(day)
        if len(days) >= MAX_OCCURRENCES or index * interval >= MAX_SPAN_DAYS:
            break
    return tuple(days), days[-1] if days else start


def _bounds_end(repeat: Any, start: date, zone: ZoneInfo) -> tuple[date | None, str | None]:
    if repeat.boundsPeriod is not None and repeat.boundsPeriod.end is not None:
        return local_date(repeat.boundsPeriod.end, zone), "the dosage timing's end"
    duration = repeat.boundsDuration
    if duration is not None and duration.value is not None:
        unit = duration.code or duration.unit
        if unit in _UNIT_DAYS and _UNIT_DAYS[unit] >= 1:
            end = _after(start, math.ceil(min(float(duration.value), MAX_SPAN_DAYS) * _UNIT_DAYS[unit]) - 1)
            if end is not None:
                return end, f"its duration ({duration.value:g} {unit})"
    return None, None


def _doses_dispensed(order: Any, medication: Any) -> float | None:
    """How many doses `dispenseRequest.quantity` holds, when its unit and the dose's can be compared."""
    quantity = order.dispenseRequest.quantity if order.dispenseRequest else None
    dose = next((r.doseQuantity for d in order.dosageInstruction or [] for r in d.doseAndRate or []
                 if r.doseQuantity is not None and r.doseQuantity.value), None)
    if quantity is None or quantity.value is None or dose is None:
        return None
    have, per = (quantity.code or quantity.unit or "").lower(), (dose.code or dose.unit or "").lower()
    strength = _strength_mg(medication)
    if have in _MASS_MG:
        total = float(quantity.value) * _MASS_MG[have]
    elif have in _UNIT_DOSE and per in _UNIT_DOSE:
        return float(quantity.value) / float(dose.value)
    elif have in _UNIT_DOSE and strength is not None:
        total = float(quantity.value) * strength
    else:
        return None
    if per in _MASS_MG:
        return total / (float(dose.value) * _MASS_MG[per])
    if per in _UNIT_DOSE and strength is not None:
        return total / (float(dose.value) * strength)
    return None


def _dispense_end(
    order: Any, medication: Any, start: date, interval: float | None
) -> tuple[date | None, str | None]:
    """The last day the supply dispensed lasts, refills included: its expected duration, else its quantity."""
    dispense = order.dispenseRequest
    if dispense is None:
        return None, None
    fills = 1 + (dispense.numberOfRepeatsAllowed or 0)
    repeats = f" with {fills - 1} refill(s)" if fills > 1 else ""
    supply = dispense.expectedSupplyDuration
    unit = (supply.code or supply.unit) if supply is not None else None
    if supply is not None and supply.value is not None and unit in _UNIT_DAYS and _UNIT_DAYS[unit] >= 1:
        supplied = math.ceil(min(float(supply.value), MAX_SPAN_DAYS) * _UNIT_DAYS[unit])
        last = _after(start, supplied * fills - 1)
        if last is not None:
            return last, f"the supply dispensed ({supply.value:g} {unit}{repeats})"
        return None, None
    doses = _doses_dispensed(order, medication)
    if doses is None:
        return None, None
    total = math.floor(doses * fills + 1e-9)
    if total <= 1:
        return start, f"the quantity dispensed (one dose{repeats})"
    if interval is None:
        return None, None
    last = _after(start, (total - 1) * interval)
    return (last, f"the quantity dispensed ({total} doses{repeats})") if last else (None, None)


@dataclass
class _Schedule:
    days: list[date] = field(default_factory=list)
    ends: list[tuple[date, str]] = field(default_factory=list)
    expandable: bool = True
    open_ended: bool = False
    end_unknown: bool = False
    interval: float | None = None


def _dosage_schedule(timing: Any, start: date, zone: ZoneInfo, plan: _Schedule) -> None:
    """Add one dosage's days and last day to the plan (every timing shape: see `_schedule`)."""
    if timing is None:
        plan.days.append(start)
        return
    events = [d for d in (local_date(e, zone) for e in timing.event or []) if d]
    repeat = timing.repeat
    interval = _interval_days(repeat, timing)
    plan.interval = plan.interval or interval
    if events:
        plan.days += events
        plan.ends.append((max(events), "the dosage timing's events"))
        if repeat is None:
            return
    if repeat is None:
        if timing.code is None:
            plan.days.append(start)  # a timing that says nothing: one dose, on the order's day
        else:
            plan.expandable, plan.open_ended = False, True  # a coded timing repeats; nothing ends it
        return
    bounds = repeat.boundsPeriod
    start = (local_date(bounds.start, zone) if bounds is not None and bounds.start else None) or start
    end, how = _bounds_end(repeat, start, zone)
    repeating = interval is not None or bool(repeat.dayOfWeek)
    if not repeating and (repeat.count == 1 or (end is not None and end <= start)):
        plan.days.append(start)  # a single dose: count 1, or bounds that start and end the same day
        plan.ends.append((start, "the dosage timing (one dose)"))
        return
    days, last = _expand(repeat, start, end, interval)
    if days is None:
        plan.expandable = False
    else:
        plan.days += days
    if end is not None:
        plan.ends.append((end, how))
    elif last is not None and repeat.count is not None:
        plan.ends.append((last, f"its number of doses ({repeat.count})"))
    elif repeat.count is not None:
        plan.end_unknown = True  # a number of doses without their spacing
    elif repeating:
        plan.open_ended = True
    elif not events:
        plan.days.append(start)


def _schedule(
    order: Any, medication: Any, start: date, zone: ZoneInfo
) -> tuple[tuple[date, ...] | None, date | None, str | None, bool, bool]:
    """Days given, last day, where it comes from, whether nothing ends the order, whether its end is unknown.

    Every timing shape gives its days: `event`s; `boundsPeriod` (start and end the same day is one dose);
    `boundsDuration`; `count` with `frequency`/`period` (alone, `count: 1` is one dose); a `Timing.code`
    (with no repeat it repeats, and runs on without a bound); no timing at all (one dose on the order's
    day). The supply dispensed (`expectedSupplyDuration`, else `quantity` in doses), refills included,
    bounds an order whose timing has no end, and extends one whose supply outlasts it.
    """
    plan = _Schedule()
    dosages = order.dosageInstruction or []
    for dosage in dosages:
        _dosage_schedule(dosage.timing, start, zone, plan)
    if not dosages:
        plan.days.append(start)
    dispense_end, dispense_how = _dispense_end(order, medication, start, plan.interval)
    if dispense_end is not None:
        plan.ends.append((dispense_end, dispense_how))
    given = tuple(sorted(set(plan.days))) if plan.expandable and plan.days else None
    # Another dosage's end does not end a dosage that nothing ends: only the supply dispensed bounds it.
    if plan.ends and (dispense_end is not None or not (plan.open_ended or plan.end_unknown)):
        # Whichever runs longest: the timing, the number of doses or the supply dispensed.
        last, how = max(plan.ends, key=lambda e: e[0])
        return given, last, how, False, False
    return given, None, None, plan.open_ended, plan.end_unknown


def _dose(order: Any, medication: Any) -> tuple[float | None, str | None, str | None]:
    """The dose per administration in mg, what the order says, and why it could not be read if so."""
    quantities = []
    for dosage in dosages(order):
        # A MedicationAdministration's dosage has `dose`; an order's Dosage has no such field, and pydantic
        # answers getattr on a missing field with an exception (2.5 µs): its fields are read directly.
        if vars(dosage).get("dose") is not None:
            quantities.append((False, dosage.dose))
        for dose_rate in getattr(dosage, "doseAndRate", None) or []:
            ordered = any(c.code == "ordered" for c in getattr(dose_rate.type, "coding", None) or [])
            if dose_rate.doseQuantity is not None:
                quantities.append((not ordered, dose_rate.doseQuantity))
            elif dose_rate.doseRange is not None:
                return None, "a dose range", "the dose is a range, not one dose"
    if not quantities:
        texts = [d.text for d in dosages(order) if d.text]
        return None, texts[0] if texts else None, "the order has no structured dose"
    quantities.sort(key=lambda q: q[0])
    quantity = quantities[0][1]
    unit = (quantity.code or quantity.unit or "").strip()
    written = (
        f"{quantity.value:g} {quantity.unit or quantity.code or ''}".strip()
        if quantity.value is not None
        else None
    )
    if quantity.value is None:
        return None, written, "the dose has no value"
    value = float(quantity.value)
    if unit.lower() in _MASS_MG:
        return value * _MASS_MG[unit.lower()], written, None
    if unit.lower() in _UNIT_DOSE:
        strength = _strength_mg(medication)
        if strength is not None:
            return value * strength, f"{written} of {strength:g} mg", None
        return None, written, "the dose is in units whose strength the record does not give"
    return None, written, f"the dose unit {unit or '(none)'} is not a mass"


def _strength_mg(medication: Any) -> float | None:
    resource = medication.resource
    if resource is None:
        return None
    for ingredient in resource.ingredient or []:
        strength = ingredient.strength
        numerator = getattr(strength, "numerator", None)
        denominator = getattr(strength, "denominator", None)
        if numerator is None or numerator.value is None:
            continue
        unit = (numerator.code or numerator.unit or "").lower()
        per = float(denominator.value) if denominator is not None and denominator.value else 1.0
        if unit in _MASS_MG:
            return float(numerator.value) * _MASS_MG[unit] / per
    return None


def route_of(resource: Any, record: PatientRecord, knowledge: Knowledge) -> tuple[str, str, str | None]:
    """Systemic or local, how, and any disagreement: of any medication resource, read as for an order."""
    return _route(resource, medication_of(resource, record), knowledge)


def dose_of(resource: Any, record: PatientRecord) -> tuple[float | None, str | None, str | None]:
    """The dose per administration in mg, as written, and why not readable: of any medication resource."""
    return _dose(resource, medication_of(resource, record))


def order_facts(
    order: Any, record: PatientRecord, knowledge: Knowledge, today: date, zone: ZoneInfo
) -> OrderFacts:
    """Read one MedicationRequest into the facts the dexamethasone rules need."""
    reference = f"MedicationRequest/{order.id}" if order.id else "MedicationRequest (draft without id)"
    medication = medication_of(order, record)
    route, route_how, route_doubt = _route(order, medication, knowledge)
    start, start_how = _start(order, today, zone)
    days, end, end_how, open_ended, end_unknown = _schedule(order, medication, start, zone)
    dose_mg, dose_how, dose_problem = _dose(order, medication)
    evidence = [reference]
    if (
        medication.resource is not None
        and medication.resource.id
        and not (medication.reference or "").startswith("#")
    ):
        evidence.append(f"Medication/{medication.resource.id}")
    return OrderFacts(
        reference=reference,
        label=medication.label(),
        route=route,
        route_how=route_how,
        route_doubt=route_doubt,
        start=start,
        start_how=start_how,
        end=end,
        end_how=end_how,
        open_ended=open_ended,
        end_unknown=end_unknown,
        dose_mg=dose_mg,
        dose_how=dose_how,
        dose_problem=dose_problem,
        days=days,
        evidence=tuple(evidence),
    )
