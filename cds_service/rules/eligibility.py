"""Eligibility for NCT06561854: every criterion evaluated, the regimens still possible, the overall verdict.

Overall: `not-eligible` when a criterion is decisively not met (E3 not met also means no regimen remains) or
the patient is deceased; `eligible` only when every criterion is met; otherwise `needs-review`, naming the
criteria that are unknown. Criterion statuses are about eligibility (see rules/criteria.py): `met` is good
for inclusion and exclusion criteria alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import Knowledge
from cds_service.rules.criteria import CRITERIA, MET, NOT_MET, UNKNOWN, CriterionResult, possible_regimens
from cds_service.rules.facts import Facts, Options
from cds_service.rules.lines import TherapyHistory, therapy_history

ELIGIBLE, NEEDS_REVIEW, NOT_ELIGIBLE = "eligible", "needs-review", "not-eligible"


@dataclass(frozen=True)
class Assessment:
    """One patient's eligibility on one day."""

    overall: str
    regimens: tuple[str, ...]
    criteria: tuple[CriterionResult, ...]
    history: TherapyHistory
    notes: tuple[str, ...] = ()

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria if c.status == UNKNOWN)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.criteria if c.status == NOT_MET)

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for c in self.criteria for r in c.evidence))

    def criterion(self, criterion_id: str) -> CriterionResult:
        return next(c for c in self.criteria if c.id == criterion_id)

    def as_json(self) -> dict[str, Any]:
        """The shape of `card.extension.dexfree.eligibility` (and of a screening JSON row)."""
        return {"overall": self.overall, "regimens": list(self.regimens),
                "criteria": [c.as_json() for c in self.criteria], "notes": list(self.notes)}


def has_myeloma(record: PatientRecord, knowledge: Knowledge) -> bool:
    """Whether the record holds a multiple myeloma condition (not entered in error or refuted)."""
    return bool(Facts(record, knowledge, date.min).myeloma)


def overall(results: tuple[CriterionResult, ...], regimens: tuple[str, ...], deceased: bool = False) -> str:
    if deceased or not regimens or any(r.status == NOT_MET for r in results):
        return NOT_ELIGIBLE
    if all(r.status == MET for r in results):
        return ELIGIBLE
    return NEEDS_REVIEW


def _deceased(record: PatientRecord) -> bool:
    patient = record.patient
    return patient is not None and (patient.deceasedBoolean is True or patient.deceasedDateTime is not None)


def assess(record: PatientRecord, knowledge: Knowledge, today: date,
           options: Options | None = None) -> Assessment:
    """Every criterion for one patient on `today` (the record is read, never changed)."""
    facts = Facts(record, knowledge, today, options)
    results = tuple(evaluate(facts) for _, evaluate in CRITERIA)
    regimens = possible_regimens(facts)
    deceased = _deceased(record)
    notes = ("the patient is deceased",) if deceased else ()
    return Assessment(overall=overall(results, regimens, deceased), regimens=regimens, criteria=results,
                      history=therapy_history(facts), notes=notes)
