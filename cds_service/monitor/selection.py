"""What trial monitoring keeps from an export: enrolments, regimen plans and the regimen drugs, dosages whole.

A medication resource is kept when its drug is one of the regimen drugs (dexamethasone, isatuximab and the
stratum drugs, whose value sets the cycle clock and the dexamethasone detection read), by the order hooks'
own raw selection (knowledge/relevance.py: `match_concept` on the raw JSON, a superset of what
`identify_drug` recognises, so nothing the rules would read is dropped), or when it names a Medication by
reference (resolved when the patient is read). Every
Medication is stored: a reference that cannot be resolved is then really missing from the export, and the
rules say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.regimens import REGIMEN_DRUGS
from cds_service.knowledge.relevance import relevance
from cds_service.screen.passes import SHARED_TYPES, Selection

MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationDispense",
                              "MedicationStatement"})
_COMMON = ("resourceType", "id", "subject", "status", "medicationCodeableConcept", "medicationReference",
           "contained")
ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"resourceType", "id", "birthDate"}),
    "ResearchSubject": frozenset({"resourceType", "id", "status", "study", "individual", "assignedArm",
                                  "actualArm", "period", "identifier", "extension"}),
    "CarePlan": frozenset({"resourceType", "id", "status", "intent", "subject", "instantiatesCanonical",
                           "period"}),
    "MedicationRequest": frozenset({*_COMMON, "intent", "doNotPerform", "authoredOn", "dosageInstruction",
                                    "dispenseRequest"}),
    "MedicationAdministration": frozenset({*_COMMON, "effectiveDateTime", "effectivePeriod", "dosage"}),
    "MedicationDispense": frozenset({*_COMMON, "whenHandedOver", "whenPrepared", "daysSupply", "quantity",
                                     "dosageInstruction"}),
    "MedicationStatement": frozenset({*_COMMON, "effectiveDateTime", "effectivePeriod", "dosage"}),
    "Medication": frozenset({"resourceType", "id", "code", "form", "ingredient", "contained"}),
    "ResearchStudy": frozenset({"resourceType", "id", "status", "identifier", "site"}),
}
PATIENT_TYPES = frozenset(ELEMENTS) - SHARED_TYPES


def project(raw: dict[str, Any]) -> dict[str, Any]:
    """The resource with only the elements monitoring reads."""
    wanted = ELEMENTS.get(raw.get("resourceType", ""))
    return raw if wanted is None else {key: value for key, value in raw.items() if key in wanted}


def selection(knowledge: Knowledge) -> Selection:
    """The monitor's Selection for `per_patient_pass`: the hooks' own raw relevance, on the regimen drugs."""
    drugs = relevance(knowledge, REGIMEN_DRUGS)

    def keep(raw: dict[str, Any]) -> bool:
        # Any medication part: the predicate reads the medication, the same in each.
        return raw.get("resourceType") not in MEDICATION_TYPES or drugs("medicationRequests", raw)

    def line_filter(kind: str) -> Callable[[bytes], bool] | None:
        if kind not in PATIENT_TYPES and kind not in SHARED_TYPES:
            return lambda line: False  # a type monitoring never reads: not even decoded
        return None

    return Selection(patient_types=PATIENT_TYPES, keep=keep, project=project, line_filter=line_filter)


def external_medication(raw: dict[str, Any]) -> str | None:
    """The reference of a medication resource's Medication when it is not contained."""
    value = raw.get("medicationReference")
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) and reference and not reference.startswith("#") else None
