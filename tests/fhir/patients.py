"""Three invented patients as one FHIR transaction Bundle, for the real FHIR server (tests and benchmark).

- `icaria-b-1`: on trial NCT06561854, arm B, ICARIA regimen from 2026-09-01, with prior therapies,
  administrations, ECOG observations, a transplant, and medications given by reference.
- `screen-2`: relapsed myeloma, not on the trial (eligibility screening material); one of its
  Conditions is malformed and one Observation carries a vendor element (the server stores both as
  they are: its memory repository does not validate).
- `empty-3`: a patient with nothing else recorded.
"""

from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

TRIAL_PATIENT = "icaria-b-1"
SCREENED_PATIENT = "screen-2"
EMPTY_PATIENT = "empty-3"


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _patient(pid: str, birth: str, gender: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender,
            "name": [{"family": "Testpatient", "given": [pid]}]}


def _myeloma(pid: str, cid: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": _concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "relapse",
                                       "Relapse"),
            "code": _concept(SNOMED, "109989006", "Multiple myeloma"), "onsetDateTime": "2019-05-02"}


def _request(pid: str, rid: str, status: str, authored: str, *, medication_ref: str | None = None,
             medication: dict[str, Any] | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid, "status": status,
                                "intent": "order", "subject": {"reference": f"Patient/{pid}"},
                                "authoredOn": authored}
    if medication_ref:
        resource["medicationReference"] = {"reference": medication_ref}
    else:
        resource["medicationCodeableConcept"] = medication
    return resource


def _ecog(pid: str, oid: str, when: str, value: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category", "survey",
                                  "Survey")],
            "code": _concept(LOINC, "89247-1", "ECOG Performance Status score"),
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
            "valueCodeableConcept": _concept(LOINC, "LA9622-7" if value == 0 else "LA9623-5", f"ECOG {value}")}


def resources() -> list[dict[str, Any]]:
    """Every resource of the three patients (ids fixed, references relative)."""
    t, s, e = TRIAL_PATIENT, SCREENED_PATIENT, EMPTY_PATIENT
    dex = {"resourceType": "Medication", "id": "dex-4mg", "code": _concept(RXNORM, "197582",
                                                                          "Dexamethasone 4 MG Oral Tablet")}
    isa = {"resourceType": "Medication", "id": "isatuximab", "code": _concept(RXNORM, "2289012", "isatuximab")}
    study = {"resourceType": "ResearchStudy", "id": "nct06561854", "status": "active",
             "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT06561854"}],
             "title": "Dexamethasone-free isatuximab regimens in relapsed myeloma",
             "arm": [{"name": "dexamethasone arm"}, {"name": "dexamethasone-free arm"}]}
    return [
        _patient(t, "1955-02-11", "female"), _patient(s, "1949-07-30", "male"), _patient(e, "1970-01-01", "male"),
        dex, isa, study,
        _myeloma(t, "mm-1"), _myeloma(s, "mm-2"),
        {"resourceType": "ResearchSubject", "id": "rs-1", "status": "on-study",
         "study": {"reference": "ResearchStudy/nct06561854"}, "individual": {"reference": f"Patient/{t}"},
         "period": {"start": "2026-08-25"}, "assignedArm": "dexamethasone-free arm"},
        {"resourceType": "CarePlan", "id": "cp-1", "status": "active", "intent": "plan",
         "subject": {"reference": f"Patient/{t}"}, "period": {"start": "2026-09-01"},
         "instantiatesCanonical": ["http://example.org/fhir/PlanDefinition/icaria-regimen"]},
        _request(t, "mr-dex-c1", "completed", "2026-09-01", medication_ref="Medication/dex-4mg"),
        _request(t, "mr-pom", "active", "2026-09-01", medication=_concept(RXNORM, "1369713", "pomalidomide 4 MG")),
        _request(t, "mr-len-2021", "stopped", "2021-03-01", medication=_concept(RXNORM, "342369", "lenalidomide")),
        _request(t, "mr-btz-2020", "stopped", "2020-01-15", medication=_concept(RXNORM, "358258", "bortezomib")),
        _request(t, "mr-dara-2023", "stopped", "2023-06-10", medication=_concept(RXNORM, "1789941", "daratumumab")),
        {"resourceType": "MedicationAdministration", "id": "ma-isa-c1d1", "status": "completed",
         "medicationReference": {"reference": "Medication/isatuximab"}, "subject": {"reference": f"Patient/{t}"},
         "effectiveDateTime": "2026-09-01T09:00:00+02:00"},
        {"resourceType": "MedicationAdministration", "id": "ma-dex-c1d1", "status": "completed",
         "medicationReference": {"reference": "Medication/dex-4mg"}, "subject": {"reference": f"Patient/{t}"},
         "effectiveDateTime": "2026-09-01T08:30:00+02:00"},
        _ecog(t, "ecog-1", "2026-08-20", 1), _ecog(t, "ecog-2", "2026-09-29", 1), _ecog(t, "ecog-3", "2026-10-27", 0),
        {"resourceType": "Procedure", "id": "asct-1", "status": "completed", "subject": {"reference": f"Patient/{t}"},
         "code": _concept(SNOMED, "709115004", "Autologous hematopoietic stem cell transplant"),
         "performedDateTime": "2020-06-01"},
        _request(s, "mr-len-s", "stopped", "2022-02-01", medication=_concept(RXNORM, "342369", "lenalidomide")),
        _ecog(s, "ecog-s", "2026-11-01", 1),
        {"resourceType": "Condition", "id": "malformed-s", "subject": {"reference": f"Patient/{s}"},
         "code": "hypertension"},
        dict(_ecog(s, "vendor-s", "2026-10-01", 0), vendorReviewFlag=True),
    ]


def transaction() -> dict[str, Any]:
    """The resources as a transaction Bundle (PUT with their ids, so tests know them)."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources()]}


def count(resource_type: str, patient_id: str) -> int:
    """How many resources of a type the Bundle holds for a patient."""
    return sum(1 for r in resources() if r["resourceType"] == resource_type
               and (r.get("subject") or r.get("individual") or {}).get("reference") == f"Patient/{patient_id}")
