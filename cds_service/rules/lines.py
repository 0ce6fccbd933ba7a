"""Prior lines of therapy, derived from the anti-myeloma medication history (criterion I3).

The protocol: "a prior therapy is defined as 2 or more cycles of therapy given as a MM treatment plan". The
record holds orders, administrations and statements, not treatment plans, so the plans are reconstructed:

1. Exposures. Every MedicationRequest (an order: not draft, cancelled or entered in error; not a proposal or
   plan), MedicationAdministration (not "not-done") and MedicationStatement (not "not-taken" or "intended")
   whose drug is in ValueSet myeloma-therapy (by code, by its Medication's code or ingredients, or by name).
   Dexamethasone given by a local route (eye drops, ear drops) is left out. Its days: the dosage's bounds, the
   dispense validity or expected supply (× refills), or the administration / statement dates; an active order
   without an end runs until today. Exposures that start after today are not prior therapy.
2. Regimens. Exposures in order of start: one joins the current regimen when it starts within one cycle of the
   regimen's start (drugs given together), or when its drug is already in the regimen (or is dexamethasone)
   and it starts within one cycle of the regimen's last known day (the treatment continuing). Anything else
   starts a new regimen: a drug added later, or drugs given again after a pause longer than a cycle.
   The cycle is the regimens' own (28 days, from plan_definitions/).
3. Dexamethasone alone is no line of myeloma therapy.
4. A regimen given after a haematopoietic cell transplant (a Procedure dated between the two) with only drugs
   of the regimen before it is that line's consolidation or maintenance: the same line (IMWG).
5. A regimen is a prior therapy when it lasted at least I3-line cycles (2 × 28 = 56 days) from its first to
   its last known day. Shorter and ended: not a line. Shorter with an end that is not known: maybe a line. A
   regimen that reuses only the drugs of the line before it, with no transplant in between, may be that
   treatment resumed or a retreatment after progression (a new line): maybe. Undated anti-myeloma drugs: maybe
   one more.

The result is a range: `lines_min` (certain lines) to `lines_max` (every "maybe" counted). Criterion I3 is
decided only when the whole range falls on one side of the protocol's 1–3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.reads import MEDICATION_SET, PROCEDURE_SETS
from cds_service.knowledge.terminology import Terminology
from cds_service.rules.dates import local_date
from cds_service.rules.facts import (
    Facts,
    concept_key,
    matcher,
    procedure_day,
    ref,
    routes,
)
from cds_service.rules.medication import medication_concepts

# The drug value sets whose id is also the drug's name; other myeloma drugs are named by the project
# CodeSystem's drug-names concept their text matched.
DRUG_SETS = ("dexamethasone", "isatuximab", "pomalidomide", "carfilzomib", "daratumumab", "lenalidomide",
             "bortezomib")
DEXAMETHASONE = "dexamethasone"

ORDER_STATUSES = frozenset({"active", "on-hold", "completed", "stopped", "unknown"})
ORDER_INTENTS_NOT_GIVEN = frozenset({"proposal", "plan", "directive", "option"})
ADMINISTRATION_SKIPPED = frozenset({"not-done", "entered-in-error"})
STATEMENT_SKIPPED = frozenset({"not-taken", "intended", "entered-in-error"})
ONGOING = frozenset({"active", "on-hold", "in-progress"})
# UCUM duration units of an expected supply, in days.
_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}


@dataclass(frozen=True)
class Exposure:
    """One anti-myeloma drug given (or ordered) over some days."""

    drug: str
    concepts: tuple[Any, ...]
    identities: tuple[Any, ...]  # concept_key of each concept, for value-set checks
    reference: str
    start: date | None
    last: date | None  # last day known to be covered (today for an ongoing order)
    open_end: bool  # the end is not known: it may have lasted longer
    ongoing: bool

    @property
    def dex(self) -> bool:
        return self.drug == DEXAMETHASONE


@dataclass
class Regimen:
    """Drugs given together, from the first to the last known day."""

    exposures: list[Exposure]
    start: date
    last: date
    drugs: set[str] = field(default_factory=set)  # its drugs other than dexamethasone
    kind: str = ""  # line | short | uncertain
    repeat: bool = False  # reuses only the drugs of the line before (retreatment or resumption)
    consolidation: list[str] = field(default_factory=list)  # transplants a later regimen was merged over

    def __post_init__(self) -> None:
        self.drugs |= {e.drug for e in self.exposures if not e.dex}

    def add(self, exposure: Exposure) -> None:
        self.exposures.append(exposure)
        self.last = max(self.last, exposure.last or exposure.start or self.last)
        if not exposure.dex:
            self.drugs.add(exposure.drug)

    @property
    def days(self) -> int:
        return (self.last - self.start).days + 1

    @property
    def open_end(self) -> bool:
        return any(e.open_end for e in self.exposures)

    @property
    def ongoing(self) -> bool:
        return any(e.ongoing for e in self.exposures)

    @property
    def label(self) -> str:
        names = sorted(self.drugs)
        if any(e.dex for e in self.exposures):
            names.append(DEXAMETHASONE)
        return " + ".join(names)

    def describe(self) -> str:
        length = "ongoing" if self.ongoing else f"{self.days} days"
        return f"{self.label} from {self.start.isoformat()} ({length})"

    @property
    def references(self) -> list[str]:
        return [e.reference for e in self.exposures] + self.consolidation


@dataclass(frozen=True)
class TherapyHistory:
    """The anti-myeloma treatment found in the record and the prior lines it makes."""

    unavailable: str | None  # why the medication history cannot be read (bulk export without it)
    exposures: tuple[Exposure, ...]
    regimens: tuple[Regimen, ...]
    undated: tuple[Exposure, ...]
    lines_min: int
    lines_max: int
    cycle_days: int
    line_days: int
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(not e.dex for e in self.exposures)

    def exposed_to(self, knowledge: Knowledge, key: str) -> tuple[Exposure, ...]:
        """Exposures to the drugs of one value set (e.g. anti-cd38, pomalidomide)."""
        found = matcher(knowledge)
        return tuple(e for e in self.exposures
                     if any(found.matches(key, c, i) for c, i in zip(e.concepts, e.identities, strict=True)))

    @property
    def lines(self) -> tuple[Regimen, ...]:
        return tuple(r for r in self.regimens if r.kind == "line" and not r.repeat)

    @property
    def maybe(self) -> tuple[Regimen, ...]:
        return tuple(r for r in self.regimens if r.kind == "uncertain" or (r.repeat and r.kind == "line"))

    def derivation(self) -> str:
        """The rule in one sentence, for the card."""
        cycles = self.line_days // self.cycle_days
        return (f"Prior lines are derived from the anti-myeloma medication history: drugs started within "
                f"{self.cycle_days} days of each other form one regimen, a regimen counts as a prior therapy "
                f"when it lasted {cycles} cycles ({self.line_days} days) or more, dexamethasone alone is not "
                f"a line, and maintenance after a transplant belongs to the line before it.")


def _names(terminology: Terminology) -> dict[str, str]:
    """Every drug name and brand (case-folded) → the drug's name, from the project CodeSystem."""
    found = {}
    for concept in terminology.children("drug-names"):
        for designation in concept.get("designation") or []:
            found[designation["value"].casefold()] = concept.get("display", concept["code"])
        found[concept["code"].casefold()] = concept.get("display", concept["code"])
    return found


_NAME_CACHE: dict[int, tuple[Terminology, dict[str, str]]] = {}
_DRUG_CACHE: dict[tuple[int, tuple[Any, ...]], tuple[Knowledge, str | None]] = {}


def drug_name(concepts: Iterable[Any], knowledge: Knowledge,
              identities: tuple[Any, ...] | None = None) -> str | None:
    """The anti-myeloma drug a medication's concepts name, or None when it is no anti-myeloma drug."""
    concepts = list(concepts)
    identity = (id(knowledge), identities or tuple(concept_key(c) for c in concepts))
    cached = _DRUG_CACHE.get(identity)
    if cached is not None and cached[0] is knowledge:
        return cached[1]
    if len(_DRUG_CACHE) >= 20_000:
        _DRUG_CACHE.clear()
    name = _drug_name(concepts, knowledge)
    _DRUG_CACHE[identity] = (knowledge, name)
    return name


def _drug_name(concepts: list[Any], knowledge: Knowledge) -> str | None:
    for key in DRUG_SETS:
        if any(knowledge.codes(key).match_concept(c) for c in concepts):
            return key
    therapy = knowledge.codes(MEDICATION_SET)
    for concept in concepts:
        match = therapy.match_concept(concept)
        if match is None:
            continue
        terminology = knowledge.terminology
        cached = _NAME_CACHE.get(id(terminology))
        if cached is None or cached[0] is not terminology:
            cached = _NAME_CACHE[id(terminology)] = (terminology, _names(terminology))
        word = (match.text or match.code or "").casefold()
        return cached[1].get(word, word)
    return None


def _supply_days(dispense: Any) -> int | None:
    duration = getattr(dispense, "expectedSupplyDuration", None) if dispense else None
    if duration is None or duration.value is None:
        return None
    per_day = _DAYS.get(str(duration.code or duration.unit or "").strip().lower())
    if per_day is None:
        return None
    fills = 1 + int(getattr(dispense, "numberOfRepeatsAllowed", None) or 0)
    return int(duration.value * per_day * fills)


def _order_days(order: Any, facts: Facts) -> tuple[date | None, date | None]:
    zone = facts.zone
    starts, ends = [], []
    for dosage in order.dosageInstruction or []:
        repeat = dosage.timing.repeat if dosage.timing else None
        bounds = repeat.boundsPeriod if repeat else None
        if bounds:
            starts.append(local_date(bounds.start, zone))
            ends.append(local_date(bounds.end, zone))
    validity = order.dispenseRequest.validityPeriod if order.dispenseRequest else None
    if validity:
        starts.append(local_date(validity.start, zone))
        ends.append(local_date(validity.end, zone))
    start = min((s for s in starts if s), default=None) or local_date(order.authoredOn, zone)
    end = max((e for e in ends if e), default=None)
    if end is None and start is not None:
        supply = _supply_days(order.dispenseRequest)
        end = start + timedelta(days=supply - 1) if supply else None
    return start, end


def _period(resource: Any, facts: Facts) -> tuple[date | None, date | None]:
    period = getattr(resource, "effectivePeriod", None)
    point = local_date(getattr(resource, "effectiveDateTime", None), facts.zone)
    if point:
        return point, point if resource.get_resource_type() == "MedicationAdministration" else None
    if period:
        return local_date(period.start, facts.zone), local_date(period.end, facts.zone)
    return None, None


def _exposure(resource: Any, facts: Facts) -> Exposure | None:
    concepts = medication_concepts(resource, facts.record)
    identities = tuple(concept_key(c) for c in concepts)
    name = drug_name(concepts, facts.knowledge, identities)
    if name is None:
        return None
    local = facts.knowledge.codes("routes-local")
    if name == DEXAMETHASONE and any(local.match_concept(r) for r in routes(resource)):
        return None
    if resource.get_resource_type() == "MedicationRequest":
        start, end = _order_days(resource, facts)
    else:
        start, end = _period(resource, facts)
    if start is not None and start > facts.today:
        return None
    ongoing = end is None and resource.status in ONGOING
    last = facts.today if ongoing else min(end, facts.today) if end else start
    return Exposure(drug=name, concepts=tuple(concepts), identities=identities, reference=ref(resource),
                    start=start, last=last, open_end=end is None and not ongoing, ongoing=ongoing)


def exposures(facts: Facts) -> list[Exposure]:
    """Every anti-myeloma exposure of the record (step 1 of the derivation)."""
    record = facts.record
    found = []
    for order in (o for o in record.medication_requests if not o.doNotPerform):  # "do not give"
        if order.status in ORDER_STATUSES and order.intent not in ORDER_INTENTS_NOT_GIVEN:
            found.append(_exposure(order, facts))
    for given in record.medication_administrations:
        if given.status not in ADMINISTRATION_SKIPPED:
            found.append(_exposure(given, facts))
    for statement in record.medication_statements:
        if statement.status not in STATEMENT_SKIPPED:
            found.append(_exposure(statement, facts))
    return [e for e in found if e is not None]


def _group(dated: list[Exposure], cycle: int) -> list[Regimen]:
    regimens: list[Regimen] = []
    window = timedelta(days=cycle)
    for exposure in sorted(dated, key=lambda e: (e.start, e.reference)):
        current = regimens[-1] if regimens else None
        together = current is not None and exposure.start <= current.start + window
        continuing = (current is not None and (exposure.dex or exposure.drug in current.drugs)
                      and exposure.start <= current.last + window)
        if together or continuing:
            current.add(exposure)
        else:
            regimens.append(Regimen([exposure], exposure.start, exposure.last or exposure.start))
    return regimens


def _merge_consolidation(regimens: list[Regimen], transplants: list[tuple[date, str]]) -> list[Regimen]:
    kept: list[Regimen] = []
    for regimen in regimens:
        before = kept[-1] if kept else None
        bridged = before is not None and regimen.drugs <= before.drugs and any(
            before.start <= day <= regimen.start for day, _ in transplants)
        if bridged:
            before.consolidation += [r for day, r in transplants if before.start <= day <= regimen.start]
            for exposure in regimen.exposures:
                before.add(exposure)
        else:
            kept.append(regimen)
    return kept


def therapy_history(facts: Facts) -> TherapyHistory:
    """The prior lines of the record (computed once per Facts)."""
    return facts.memo("therapy-history", lambda: _derive(facts))


def _derive(facts: Facts) -> TherapyHistory:
    cycle = facts.knowledge.regimens[0].blocks[0].length_days
    line_days = int(facts.knowledge.study.criterion("I3-line").low) * cycle
    parts = ("medicationRequests", "medicationAdministrations", "medicationStatements")
    # One kind of medication resource is enough to read a history; none at all is no history.
    unavailable = facts.missing(*parts) if all(p in facts.record.missing for p in parts) else None
    found = exposures(facts)
    dated = [e for e in found if e.start is not None]
    undated = tuple(e for e in found if e.start is None and not e.dex)
    notes = []
    grouped = _group(dated, cycle)
    regimens = [r for r in grouped if r.drugs]
    if len(regimens) < len(grouped):
        notes.append("dexamethasone alone is not counted as a line")
    transplants = sorted((day, ref(p)) for key in PROCEDURE_SETS for p in facts.procedures(key)
                         if (day := procedure_day(p, facts.zone)) is not None)
    regimens = _merge_consolidation(regimens, transplants)
    previous: Regimen | None = None
    for regimen in regimens:
        if regimen.days >= line_days:
            regimen.kind = "line"
        else:
            regimen.kind = "uncertain" if regimen.open_end else "short"
        if regimen.kind != "short":
            regimen.repeat = previous is not None and regimen.drugs <= previous.drugs
            previous = regimen
    certain = sum(1 for r in regimens if r.kind == "line" and not r.repeat)
    maybe = sum(1 for r in regimens if r.kind == "uncertain" or (r.repeat and r.kind == "line"))
    if undated:
        maybe += 1
        notes.append(f"{len(undated)} undated anti-myeloma order(s)")
    return TherapyHistory(unavailable=unavailable, exposures=tuple(found), regimens=tuple(regimens),
                          undated=undated, lines_min=certain, lines_max=certain + maybe, cycle_days=cycle,
                          line_days=line_days, notes=tuple(notes))
