"""A read-only FHIR server over the demo population: reads and the searches of the discovery templates.

It answers only what the service's prefetch templates ask (`Type/id`, `Type?patient=id`, for
Observation `code=system|code,...`, and the study by `ResearchStudy?identifier=[system|]value`); any other
parameter is refused with an OperationOutcome rather
than ignored, so a template the demo cannot answer shows up instead of giving a silently empty prefetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.demo.population import Population
from cds_service.errors import CdsError

# The element holding a resource's patient, per type the templates search.
PATIENT_ELEMENT = {
    "Condition": "subject", "MedicationRequest": "subject", "MedicationAdministration": "subject",
    "MedicationStatement": "subject", "Observation": "subject", "Procedure": "subject",
    "CarePlan": "subject", "ResearchSubject": "individual",
}
IGNORED = frozenset({"_count"})


def read(population: Population, kind: str, resource_id: str) -> dict[str, Any]:
    """A resource by type and id; a 404 CdsError when the demo has none."""
    for resource in population.resources():
        if resource["resourceType"] == kind and resource["id"] == resource_id:
            return resource
    raise CdsError(404, f"The demo population has no {kind} with that id", code="not-found")


def _searchset(found: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
    if found:
        bundle["entry"] = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in found]
    return bundle


def _studies(population: Population, params: Mapping[str, list[str]]) -> dict[str, Any]:
    """ResearchStudies by identifier token (`value` or `system|value`; the value compared as FHIR does)."""
    values = params.get("identifier") or []
    if set(params) - {"identifier"} - IGNORED or len(values) != 1 or not values[0]:
        raise CdsError(400, "Search demo ResearchStudies with one identifier=[system|]value", code="required")
    system, _, value = values[0].rpartition("|")
    found = [r for r in population.resources() if r["resourceType"] == "ResearchStudy"
             and any(i.get("value") == value and (not system or i.get("system") == system)
                     for i in r.get("identifier") or [])]
    return _searchset(found)


def search(population: Population, kind: str, params: Mapping[str, list[str]]) -> dict[str, Any]:
    """A searchset Bundle of one patient's resources of `kind` (a 400 CdsError for what it cannot do)."""
    if kind == "ResearchStudy":
        return _studies(population, params)
    if kind not in PATIENT_ELEMENT:
        raise CdsError(400, f"The demo FHIR endpoint does not search {kind}", code="not-supported")
    unknown = sorted(set(params) - {"patient", "code"} - IGNORED)
    if unknown or ("code" in params and kind != "Observation"):
        raise CdsError(400, "The demo FHIR endpoint supports only patient (and code for Observation)",
                       code="not-supported")
    patients = params.get("patient") or []
    if len(patients) != 1 or not patients[0]:
        raise CdsError(400, "Search the demo FHIR endpoint with one patient=<id>", code="required")
    wanted = patients[0].removeprefix("Patient/")
    codes = {tuple(token.split("|", 1)) for value in params.get("code", []) for token in value.split(",")}
    found = []
    for resource in population.resources():
        if resource["resourceType"] != kind:
            continue
        if (resource.get(PATIENT_ELEMENT[kind]) or {}).get("reference") != f"Patient/{wanted}":
            continue
        if codes and not any((c["system"], c["code"]) in codes or (c["code"],) in codes
                             for c in resource.get("code", {}).get("coding", [])):
            continue
        found.append(resource)
    return _searchset(found)
