"""Builders of FHIR R4 JSON for trial scenarios: a patient, enrolment, regimen CarePlan and draft orders.

Dates are around the suite's fixed today (2026-11-24, Europe/Paris). The standard patient started ICARIA
on 2026-09-01 (cycle 1 day 1), so cycle 3 day 1 is 2026-10-27 and today is cycle 4 day 1.
"""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta
from typing import Any

BASE = "https://dexfree.example.org/fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SCT = "http://snomed.info/sct"
C1D1 = date(2026, 9, 1)
PATIENT_ID = "pat-42"


def day_of(cycle: int, day: int, c1d1: date = C1D1) -> date:
    """The calendar date of a cycle day, with 28-day cycles and no delay."""
    return c1d1 + timedelta(days=(cycle - 1) * 28 + day - 1)


def patient(birth: str | None = "1960-05-10") -> dict[str, Any]:
    resource = {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female"}
    if birth:
        resource["birthDate"] = birth
    return resource


def research_study(nct: str = "NCT06561854", study_id: str = "rs-study") -> dict[str, Any]:
    return {
        "resourceType": "ResearchStudy",
        "id": study_id,
        "status": "active",
        "identifier": [{"system": "https://clinicaltrials.gov", "value": nct}],
    }


def research_subject(
    arm: str | None = "dexamethasone-free arm",
    status: str = "on-study",
    *,
    element: str = "actualArm",
    study: str = "ResearchStudy/rs-study",
    subject_id: str = "subj-1",
    enrolled: str = "2026-08-20",
    **extra: Any,
) -> dict[str, Any]:
    resource = {
        "resourceType": "ResearchSubject",
        "id": subject_id,
        "status": status,
        "identifier": [{"system": "urn:aphp:dexfree:subject", "value": "DXF-0042"}],
        "study": {"reference": study},
        "individual": {"reference": f"Patient/{PATIENT_ID}"},
        "period": {"start": enrolled},
    }
    if arm is not None:
        resource[element] = arm
    resource.update(extra)
    return resource


def care_plan(
    regimen: str = "icaria-arm-b", start: date | None = C1D1, plan_id: str = "cp-1", status: str = "active"
) -> dict[str, Any]:
    resource = {
        "resourceType": "CarePlan",
        "id": plan_id,
        "status": status,
        "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "instantiatesCanonical": [f"{BASE}/PlanDefinition/{regimen}"],
    }
    if start:
        resource["period"] = {"start": start.isoformat()}
    return resource


def administration(
    drug: str, on: date | str, admin_id: str, code: dict[str, Any] | None = None
) -> dict[str, Any]:
    concept = code or {"text": drug}
    return {
        "resourceType": "MedicationAdministration",
        "id": admin_id,
        "status": "completed",
        "medicationCodeableConcept": concept,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": on.isoformat() if isinstance(on, date) else on,
    }


def medication_request(
    drug_text: str, start: date, request_id: str, status: str = "active"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": request_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {"text": drug_text},
        "authoredOn": start.isoformat(),
    }


def dex_order(
    start: date | None = None,
    dose: float | None = 40,
    *,
    unit: str = "mg",
    route: str | None = "oral",
    order_id: str = "dex-1",
    medication: dict[str, Any] | None = None,
    days: int | None = 1,
    frequency: tuple[int, int, str] | None = (1, 1, "d"),
    **extra: Any,
) -> dict[str, Any]:
    """A draft dexamethasone MedicationRequest: by default 40 mg orally, once, on `start`."""
    start = start or day_of(4, 1)
    dosage: dict[str, Any] = {"text": "as ordered"}
    if route == "oral":
        dosage["route"] = {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}]}
    elif route == "iv":
        dosage["route"] = {"coding": [{"system": SCT, "code": "47625008", "display": "Intravenous route"}]}
    elif route:
        dosage["route"] = {"text": route}
    if dose is not None:
        dosage["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": dose,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                }
            }
        ]
    repeat: dict[str, Any] = {"boundsPeriod": {"start": start.isoformat()}}
    if days is not None:
        repeat["boundsPeriod"]["end"] = (start + timedelta(days=days - 1)).isoformat()
    if frequency:
        repeat.update(frequency=frequency[0], period=frequency[1], periodUnit=frequency[2])
    dosage["timing"] = {"repeat": repeat}
    resource = {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": "2026-11-24",
        "dosageInstruction": [dosage],
    }
    if medication is None:
        medication = {
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}],
                "text": "dexamethasone",
            }
        }
    resource.update(medication)
    resource.update(extra)
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": copy.deepcopy(r)} for r in resources],
    }


def call(
    hook: str = "order-sign",
    orders: tuple[dict[str, Any], ...] = (),
    *,
    patient_resource: Any = "default",
    subjects: tuple[dict[str, Any], ...] | None = None,
    studies: tuple[dict[str, Any], ...] | None = None,
    plans: tuple[dict[str, Any], ...] | None = None,
    administrations: tuple[dict[str, Any], ...] = (),
    requests: tuple[dict[str, Any], ...] = (),
    selections: tuple[str, ...] | None = None,
    draft_extra: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A hook request with complete prefetch; the standard arm B ICARIA patient unless told otherwise."""
    subjects = (research_subject(),) if subjects is None else subjects
    studies = (research_study(),) if studies is None else studies
    plans = (care_plan(),) if plans is None else plans
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": PATIENT_ID}
    if hook != "patient-view":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "entry": [{"resource": copy.deepcopy(o)} for o in (*orders, *draft_extra)],
        }
    if hook == "order-select":
        context["selections"] = list(
            selections if selections is not None else [f"MedicationRequest/{o['id']}" for o in orders]
        )
    prefetch = {
        "patient": patient() if patient_resource == "default" else patient_resource,
        "conditions": bundle(),
        "medicationRequests": bundle(*requests),
        "medicationAdministrations": bundle(*administrations),
        "medicationStatements": bundle(),
        "observations": bundle(),
        "procedures": bundle(),
        "researchSubjects": bundle(*subjects, *studies),
        "carePlans": bundle(*plans),
    }
    return {
        "hook": hook,
        "hookInstance": str(uuid.UUID(int=len(orders) + 7)),
        "context": context,
        "prefetch": prefetch,
    }


# ResearchSubjects that are not valid FHIR R4, each the change to `research_subject()` that breaks it: the
# record cannot read them, and any may be the patient's enrolment in the study.
BROKEN_SUBJECTS = {
    "enrolment date in words": {"period": {"start": "twentieth of August"}},
    "arm as an object": {"actualArm": {"text": "dexamethasone-free arm"}},
    "study as text": {"study": "NCT06561854"},
    "identifier as a string": {"identifier": "DXF-0042"},
}
BROKEN_NOTE = "1 ResearchSubject of the patient is not valid FHIR R4: it may be the enrolment in NCT06561854"
