"""Regimens read from the regimen PlanDefinitions: cycles, days of each drug, and doses by age band.

A regimen PlanDefinition (pattern of the FHIR core example KDN5) holds one action per cycle definition,
in order, each with `timingTiming.repeat` (`duration` = cycle length in days, `count` = how many cycles
it covers; no count = repeated until progression, so it must come last). Each cycle definition holds one
action per drug with its days (`timing-daysOfCycle`) and a `definitionCanonical` to the
ActivityDefinition carrying the dose — or, when the dose depends on age, child actions
(`selectionBehavior: exactly-one`), one per ActivityDefinition whose `useContext` age range says for
whom it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cds_service.errors import ConfigError
from cds_service.knowledge.artifacts import Artifacts, versioned
from cds_service.knowledge.terminology import Terminology

DAYS_OF_CYCLE = "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle"
AGE_CONTEXT = ("http://terminology.hl7.org/CodeSystem/usage-context-type", "age")
# The drugs a regimen action may give, by the id of the ValueSet that recognises them.
REGIMEN_DRUGS = ("dexamethasone", "isatuximab", "pomalidomide", "carfilzomib")


@dataclass(frozen=True)
class DoseOption:
    """One ActivityDefinition's dose, and the age band (whole years, inclusive) it is for."""

    activity: str  # url|version of the ActivityDefinition
    value: float
    unit: str
    text: str
    age_low: int | None = None
    age_high: int | None = None

    def fits(self, age: int) -> bool:
        above = self.age_low is None or age >= self.age_low
        return above and (self.age_high is None or age <= self.age_high)

    def describe(self) -> str:
        return f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class DrugAction:
    """A drug of a cycle definition: its days of the cycle and its dose options."""

    drug: str
    action_id: str
    title: str
    days: tuple[int, ...]
    options: tuple[DoseOption, ...]

    def dose_for_age(self, age: int | None) -> DoseOption | None:
        """The dose for a patient's age; None when the age is unknown and the dose depends on it."""
        if len(self.options) == 1:
            return self.options[0]
        if age is None:
            return None
        return next((o for o in self.options if o.fits(age)), None)


@dataclass(frozen=True)
class CycleBlock:
    """A cycle definition: cycles `first`..`last` (None: until progression) of `length_days` days each."""

    action_id: str
    title: str
    first: int
    last: int | None
    length_days: int
    drugs: tuple[DrugAction, ...]

    def covers(self, cycle: int) -> bool:
        return cycle >= self.first and (self.last is None or cycle <= self.last)

    def drug(self, key: str) -> DrugAction | None:
        """The first action of a drug (a drug may have two, e.g. carfilzomib 20 then 56 mg/m²)."""
        return next((d for d in self.drugs if d.drug == key), None)

    def drug_actions(self, key: str) -> tuple[DrugAction, ...]:
        return tuple(d for d in self.drugs if d.drug == key)


@dataclass(frozen=True)
class Regimen:
    """One regimen PlanDefinition: a stratum (ICARIA, IKEMA) as given in one arm."""

    key: str
    arm: str
    url: str
    canonical: str  # url|version
    title: str
    blocks: tuple[CycleBlock, ...]
    publisher: str = ""
    # A site's adaptation (knowledge/sites.py): the site it is for and the published regimen's url.
    site: str | None = None
    derived_from: str | None = None

    def whose(self) -> str:
        """Whose schedule this is, in words: the published regimen or a site's adaptation of it."""
        if self.site is None:
            return "the published regimen"
        return f"site {self.site}'s adaptation ({self.publisher})" if self.publisher else \
            f"site {self.site}'s adaptation"

    def block(self, cycle: int) -> CycleBlock | None:
        """The definition of a cycle (the first block covering it), None where the regimen defines none."""
        found = self._block_of.get(cycle)
        if found is not None:
            return found
        return next((b for b in self.blocks if b.covers(cycle)), None)

    @cached_property
    def _block_of(self) -> dict[int, CycleBlock]:
        # The rules ask for the block of a cycle some fifty times a call: looked up, not searched. Past the
        # cycles listed here only an open-ended block can cover a cycle, and the search above finds it.
        last = max((b.last or b.first for b in self.blocks), default=0)
        table = {c: next((b for b in self.blocks if b.covers(c)), None) for c in range(1, last + 1)}
        return {c: b for c, b in table.items() if b is not None}

    def cycle_start(self, cycle: int) -> int:
        """Days from cycle 1 day 1 to day 1 of `cycle`, with each cycle's own length."""
        offset = 0
        for number in range(1, cycle):
            block = self.block(number)
            if block is None:
                raise ValueError(f"{self.key} arm {self.arm} defines no cycle {number}")
            offset += block.length_days
        return offset

    def cycle_and_day(self, days_since_c1d1: int) -> tuple[int, int] | None:
        """Cycle number and day of cycle of a date `days_since_c1d1` after cycle 1 day 1; None before it."""
        if days_since_c1d1 < 0:
            return None
        cycle, remaining = 1, days_since_c1d1
        while True:
            block = self.block(cycle)
            if block is None:
                return None
            if remaining < block.length_days:
                return cycle, remaining + 1
            if block.last is None:
                # The open-ended last block: arithmetic instead of a loop over every cycle until progression.
                extra, day = divmod(remaining, block.length_days)
                return cycle + extra, day + 1
            remaining -= block.length_days
            cycle += 1

    def gives(self, drug: str, cycle: int) -> bool:
        block = self.block(cycle)
        return block is not None and block.drug(drug) is not None

    def first_cycle_without(self, drug: str) -> int | None:
        """The first cycle in which the regimen gives no `drug` (arm B: 3 for dexamethasone); None if none."""
        for block in self.blocks:
            if block.drug(drug) is None:
                return block.first
        return None


def _days(action: Mapping[str, Any], where: str) -> tuple[int, ...]:
    for ext in action.get("extension") or []:
        if ext.get("url") == DAYS_OF_CYCLE:
            parts = ext.get("extension") or []
            days = tuple(sorted(e["valueInteger"] for e in parts if e.get("url") == "day"))
            if days:
                return days
    raise ConfigError(f"{where}: action {action.get('id')} has no timing-daysOfCycle days")


def _age_band(activity: Mapping[str, Any]) -> tuple[int | None, int | None]:
    for context in activity.get("useContext") or []:
        code = context.get("code") or {}
        if (code.get("system"), code.get("code")) == AGE_CONTEXT:
            band = context.get("valueRange") or {}
            for end in ("low", "high"):
                if end in band and band[end].get("code", band[end].get("unit")) != "a":
                    raise ConfigError(f"ActivityDefinition/{activity['id']}: age range must be in years "
                                      "('a')")
            low, high = band.get("low", {}).get("value"), band.get("high", {}).get("value")
            return (int(low) if low is not None else None, int(high) if high is not None else None)
    return None, None


def _dose(activity: Mapping[str, Any]) -> DoseOption:
    where = f"ActivityDefinition/{activity['id']}"
    try:
        dosage = activity["dosage"][0]
        quantity = dosage["doseAndRate"][0]["doseQuantity"]
        value, unit = float(quantity["value"]), quantity.get("code") or quantity["unit"]
    except (KeyError, IndexError, TypeError):
        raise ConfigError(f"{where}: needs dosage[0].doseAndRate[0].doseQuantity with value and "
                          "unit") from None
    low, high = _age_band(activity)
    return DoseOption(activity=versioned(activity), value=value, unit=unit, text=dosage.get("text", ""),
                      age_low=low, age_high=high)


def _drug_of(activity: Mapping[str, Any], terminology: Terminology) -> str:
    product = activity.get("productCodeableConcept")
    for key in REGIMEN_DRUGS:
        if terminology[key].match_concept(product):
            return key
    raise ConfigError(f"ActivityDefinition/{activity['id']}: product is none of {REGIMEN_DRUGS}")


def _drug_action(action: Mapping[str, Any], artifacts: Artifacts, terminology: Terminology,
                 where: str) -> DrugAction:
    days = _days(action, where)
    canonicals = ([action["definitionCanonical"]] if action.get("definitionCanonical")
                  else [child["definitionCanonical"] for child in action.get("action") or []])
    if not canonicals:
        raise ConfigError(f"{where}: action {action.get('id')} names no ActivityDefinition")
    activities = [artifacts.resolve(c, where) for c in canonicals]
    drugs = {_drug_of(a, terminology) for a in activities}
    if len(drugs) != 1:
        raise ConfigError(f"{where}: action {action.get('id')} mixes drugs {sorted(drugs)}")
    options = tuple(_dose(a) for a in activities)
    if len(options) > 1:
        _check_age_bands(options, f"{where} action {action.get('id')}")
    return DrugAction(drug=drugs.pop(), action_id=action.get("id", ""), title=action.get("title", ""),
                      days=days, options=options)


def _check_age_bands(options: tuple[DoseOption, ...], where: str) -> None:
    """Dose options chosen by age must cover every adult age exactly once."""
    for age in range(0, 131):
        fitting = [o for o in options if o.fits(age)]
        if len(fitting) != 1:
            raise ConfigError(f"{where}: {len(fitting)} dose options fit age {age}; the age bands must not "
                              "overlap or leave gaps")


def read_regimen(plan: Mapping[str, Any], key: str, arm: str, artifacts: Artifacts,
                 terminology: Terminology) -> Regimen:
    """A regimen PlanDefinition as cycle blocks; ConfigError naming the artifact if it is not well formed."""
    where = f"PlanDefinition/{plan['id']}"
    top = plan.get("action") or []
    if len(top) != 1 or not top[0].get("action"):
        raise ConfigError(f"{where}: expected one regimen action holding the cycle definitions")
    blocks, first = [], 1
    for cycle_def in top[0]["action"]:
        repeat = ((cycle_def.get("timingTiming") or {}).get("repeat") or {})
        if repeat.get("durationUnit") != "d" or not repeat.get("duration"):
            raise ConfigError(f"{where}: cycle definition {cycle_def.get('id')} needs timingTiming.repeat "
                              "duration in days")
        if blocks and blocks[-1].last is None:
            raise ConfigError(f"{where}: a cycle definition follows one repeated until progression")
        count = repeat.get("count")
        drugs = tuple(_drug_action(a, artifacts, terminology, where) for a in cycle_def.get("action") or [])
        blocks.append(CycleBlock(action_id=cycle_def.get("id", ""), title=cycle_def.get("title", ""),
                                 first=first, last=first + count - 1 if count else None,
                                 length_days=int(repeat["duration"]), drugs=drugs))
        first += count or 0
    if blocks[-1].last is not None:
        raise ConfigError(f"{where}: the last cycle definition must repeat until progression (no count)")
    return Regimen(key=key, arm=arm, url=plan["url"], canonical=versioned(plan), title=plan["title"],
                   blocks=tuple(blocks), publisher=plan.get("publisher", ""))
