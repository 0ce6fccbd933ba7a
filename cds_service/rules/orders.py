"""What a MedicationRequest asks for: route (systemic or local), first and last day, dose in mg, and days.

Everything is read from the structured order; free text is used only to recognise routes and forms when
nothing is coded. Where the order does not say, the fact is None and the rules say "could not verify".
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
# Most occurrences expanded for one order: a year of daily doses is plenty to place it in the cycles.
MAX_OCCURRENCES = 400


@dataclass(frozen=True)
class OrderFacts:
    """One order as the rules see it; every `*_how` says which element a fact came from, for the card."""

    reference: str
    label: str
    route: str  # "systemic" or "local"
    route_how: str
    start: date
    start_how: str
    end: date | None  # last day it would be given; None with open_ended, or when only a single day is known
    end_how: str | None
    open_ended: bool
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


def _route(order: Any, medication: Any, knowledge: Knowledge) -> tuple[str, str]:
    """Systemic unless something says local; a coded route decides first, then route text, then form/name."""
    local, systemic = knowledge.codes("routes-local"), knowledge.codes("routes-systemic")
    products = knowledge.codes("dexamethasone-systemic-products")
    routes = [d.route for d in order.dosageInstruction or [] if d.route is not None]
    for route in routes:
        for coding in route.coding or []:
            if local.has_code(coding.system, coding.code):
                return "local", f"route: {coding.display or coding.code} (coded)"
            if systemic.has_code(coding.system, coding.code):
                return "systemic", f"route: {coding.display or coding.code} (coded)"
    for route in routes:
        for text in _concept_texts(route):
            if local.match_text(text):
                return "local", f'route: "{text}"'
            if systemic.match_text(text):
                return "systemic", f'route: "{text}"'
    concept = medication.concept if not isinstance(medication.concept, dict) else None
    if concept is not None and products.match_codings(concept.coding or []):
        return "systemic", "a systemic product code"
    form = getattr(medication.resource, "form", None)
    texts = [
        *_concept_texts(form),
        *_concept_texts(concept),
        medication.label(),
        *(d.text or "" for d in order.dosageInstruction or []),
    ]
    for text in texts:
        found = local.match_text(text)
        if found:
            return "local", f'"{found.text}" in the product or dosage text'
    for text in texts:
        found = systemic.match_text(text)
        if found:
            return "systemic", f'"{found.text}" in the product or dosage text'
    return "systemic", "route not stated: taken as systemic"


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


def _interval_days(repeat: Any) -> float | None:
    """Days between two doses of a `frequency` per `period periodUnit` schedule; None if not expandable."""
    if repeat.dayOfWeek:
        return None
    frequency, period, unit = repeat.frequency or 1, repeat.period, repeat.periodUnit
    if period is None or unit not in _UNIT_DAYS:
        return None
    return float(period) * _UNIT_DAYS[unit] / frequency


def _expand(repeat: Any, start: date, end: date | None) -> tuple[tuple[date, ...] | None, date | None]:
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
    interval = _interval_days(repeat)
    if interval is None:
        return None, end
    if count is None and end is None:
        return None, None
    days, index = [], 0
    while len(days) < MAX_OCCURRENCES:
        day = start + timedelta(days=math.floor(index * interval))
        if (end is not None and day > end) or (count is not None and index >= count):
            break
        if not days or days[-1] != day:
            days.append(day)
        index += 1
    return tuple(days), days[-1] if days else start


def _bounds_end(repeat: Any, start: date, zone: ZoneInfo) -> tuple[date | None, str | None]:
    if repeat.boundsPeriod is not None and repeat.boundsPeriod.end is not None:
        return local_date(repeat.boundsPeriod.end, zone), "the dosage timing's end"
    duration = repeat.boundsDuration
    if duration is not None and duration.value is not None:
        unit = duration.code or duration.unit
        if unit in _UNIT_DAYS and _UNIT_DAYS[unit] >= 1:
            days = math.ceil(float(duration.value) * _UNIT_DAYS[unit])
            return start + timedelta(days=days - 1), f"its duration ({duration.value:g} {unit})"
    return None, None


def _dispense_end(order: Any, start: date) -> tuple[date | None, str | None]:
    dispense = order.dispenseRequest
    if dispense is None or dispense.expectedSupplyDuration is None:
        return None, None
    supply = dispense.expectedSupplyDuration
    unit = supply.code or supply.unit
    if supply.value is None or unit not in _UNIT_DAYS or _UNIT_DAYS[unit] < 1:
        return None, None
    fills = 1 + (dispense.numberOfRepeatsAllowed or 0)
    days = math.ceil(float(supply.value) * _UNIT_DAYS[unit]) * fills
    repeats = f" with {fills - 1} refill(s)" if fills > 1 else ""
    return start + timedelta(days=days - 1), f"the supply dispensed ({supply.value:g} {unit}{repeats})"


def _schedule(
    order: Any, start: date, zone: ZoneInfo
) -> tuple[tuple[date, ...] | None, date | None, str | None, bool]:
    """Days given, last day, where the last day comes from, and whether nothing ends the order."""
    all_days: list[date] = []
    ends: list[tuple[date, str]] = []
    expandable, open_ended = True, False
    for dosage in order.dosageInstruction or []:
        timing = dosage.timing
        if timing is None:
            expandable = False
            continue
        events = [d for d in (local_date(e, zone) for e in timing.event or []) if d]
        all_days += events
        if events:
            ends.append((max(events), "the dosage timing's events"))
        repeat = timing.repeat
        if repeat is None:
            if not events:
                expandable = False
            continue
        end, how = _bounds_end(repeat, start, zone)
        days, last = _expand(repeat, start, end)
        if days is None:
            expandable = False
        else:
            all_days += days
        if end is not None:
            ends.append((end, how))
        elif last is not None and repeat.count is not None:
            ends.append((last, f"its number of doses ({repeat.count})"))
        elif _interval_days(repeat) is not None or repeat.dayOfWeek:
            open_ended = True
    dispense_end, dispense_how = _dispense_end(order, start)
    if dispense_end is not None:
        ends.append((dispense_end, dispense_how))
    given = tuple(sorted(set(all_days))) if expandable and all_days else None
    if ends:
        # Whichever runs longest: the timing, the number of doses or the supply dispensed.
        last, how = max(ends, key=lambda e: e[0])
        return given, last, how, False
    return given, None, None, open_ended


def _dose(order: Any, medication: Any) -> tuple[float | None, str | None, str | None]:
    """The dose per administration in mg, what the order says, and why it could not be read if so."""
    quantities = []
    for dosage in order.dosageInstruction or []:
        for dose_rate in dosage.doseAndRate or []:
            ordered = any(c.code == "ordered" for c in getattr(dose_rate.type, "coding", None) or [])
            if dose_rate.doseQuantity is not None:
                quantities.append((not ordered, dose_rate.doseQuantity))
            elif dose_rate.doseRange is not None:
                return None, "a dose range", "the dose is a range, not one dose"
    if not quantities:
        texts = [d.text for d in order.dosageInstruction or [] if d.text]
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


def order_facts(
    order: Any, record: PatientRecord, knowledge: Knowledge, today: date, zone: ZoneInfo
) -> OrderFacts:
    """Read one MedicationRequest into the facts the dexamethasone rules need."""
    reference = f"MedicationRequest/{order.id}" if order.id else "MedicationRequest (draft without id)"
    medication = medication_of(order, record)
    route, route_how = _route(order, medication, knowledge)
    start, start_how = _start(order, today, zone)
    days, end, end_how, open_ended = _schedule(order, start, zone)
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
        start=start,
        start_how=start_how,
        end=end,
        end_how=end_how,
        open_ended=open_ended,
        dose_mg=dose_mg,
        dose_how=dose_how,
        dose_problem=dose_problem,
        days=days,
        evidence=tuple(evidence),
    )
