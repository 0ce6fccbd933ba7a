"""Prefetch templates: the FHIR queries each part of a PatientRecord comes from."""

from __future__ import annotations

from collections.abc import Mapping

# Part of the record → (resource type, query). Only the query subset the specification recommends:
# an instance read, and type-level searches by patient reference. Past and stopped orders are
# wanted too (prior therapies count for eligibility), so no status filter.
TEMPLATES: Mapping[str, tuple[str, str]] = {
    "patient": ("Patient", "Patient/{{context.patientId}}"),
    "conditions": ("Condition", "Condition?patient={{context.patientId}}"),
    "medicationRequests": ("MedicationRequest", "MedicationRequest?patient={{context.patientId}}"),
    "medicationAdministrations": ("MedicationAdministration",
                                  "MedicationAdministration?patient={{context.patientId}}"),
    "medicationStatements": ("MedicationStatement", "MedicationStatement?patient={{context.patientId}}"),
    "observations": ("Observation", "Observation?patient={{context.patientId}}"),
    "procedures": ("Procedure", "Procedure?patient={{context.patientId}}"),
    "researchSubjects": ("ResearchSubject", "ResearchSubject?patient={{context.patientId}}"),
    "carePlans": ("CarePlan", "CarePlan?patient={{context.patientId}}"),
}


def templates(*parts: str) -> dict[str, str]:
    """The prefetch templates of the given record parts, for a service's discovery entry."""
    return {part: TEMPLATES[part][1] for part in parts}
