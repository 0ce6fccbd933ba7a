"""Prefetch templates: the FHIR queries each part of a PatientRecord comes from, in discovery and in reads.

Only the query subset the CDS Hooks specification recommends ("Prefetch query restrictions": instance
reads, type-level searches by patient reference, token equality, date prefixes, `_count`, `_sort`).
`_include` is not in that subset, so ResearchSubject is asked for without its ResearchStudy
(`ResearchSubject?patient=…`, not `…&_include=ResearchSubject:study`): a client that implements only
the subset can still satisfy every key. The trial's own study has a key of its own instead,
`researchStudy` = `ResearchStudy?identifier=<the study's NCT number>` (token equality; no patient token:
the specification allows templates without one), so that a call with complete prefetch needs no read.
A ResearchSubject's study is resolved from that key, or from any ResearchStudy a client adds to the
ResearchSubject Bundle, else read from `fhirServer` by its reference.

When the service reads a part itself, it is free of that restriction: it asks for the same search
plus `_include` of what it would otherwise resolve one by one (the study, the medications), and a
large `_count`. A server that ignores `_include` costs one more round of reads; one that refuses
it (400) is asked again without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

PATIENT_TOKEN = "{{context.patientId}}"  # noqa: S105 - a prefetch token, not a secret

# Part of the record → (resource type, query). Past and stopped orders are wanted too (prior
# therapies count for eligibility), so no status filter.
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

# The study key: not a record part (nothing is searched for it when it is not prefetched). Its value is
# the study's identifier from the knowledge, put in by the runtime (knowledge/relevance.narrowed).
STUDY_KEY = "researchStudy"
STUDY_TOKEN = "{{dexfree.studyIdentifier}}"  # noqa: S105 - a template placeholder, not a secret
STUDY_TEMPLATE = f"ResearchStudy?identifier={STUDY_TOKEN}"

# What the service's own searches add, per part (see the module docstring).
SERVER_INCLUDES: Mapping[str, str] = {
    "medicationRequests": "MedicationRequest:medication",
    "medicationAdministrations": "MedicationAdministration:medication",
    "medicationStatements": "MedicationStatement:medication",
    "researchSubjects": "ResearchSubject:study",
}
# Servers cap it at their own maximum page size; it only saves pages where they allow more.
SERVER_PAGE_SIZE = 200


def templates(*parts: str, study: bool = True) -> dict[str, str]:
    """The prefetch templates of some record parts, and the study key, for a service's discovery entry."""
    found = {part: TEMPLATES[part][1] for part in parts}
    return {**found, STUDY_KEY: STUDY_TEMPLATE} if study else found


def with_study(template: str, identifier: str) -> str:
    """The study template with the study's identifier value (URL-encoded) in place of its placeholder."""
    return template.replace(STUDY_TOKEN, quote(identifier, safe=""))


def render(template: str, patient_id: str) -> str:
    """A template with its patient token replaced (the id URL-encoded: it goes into a path or a query)."""
    return template.replace(PATIENT_TOKEN, quote(patient_id, safe=""))


def with_codes(template: str, codings: Iterable[tuple[str, str]]) -> str:
    """A search template restricted to some codes (`code=system|code,…`: token equality, in the subset)."""
    tokens = ",".join(f"{system}|{code}" for system, code in sorted(set(codings)))
    return f"{template}&code={tokens}" if tokens else template


def server_queries(part: str, patient_id: str, template: str | None = None) -> tuple[str, ...]:
    """The relative requests the service itself makes for a part: preferred first, then plain fallbacks.

    `template`: the service's own prefetch template for the part (it may restrict codes); default the
    part's plain template.
    """
    query = render(template or TEMPLATES[part][1], patient_id)
    if "?" not in query:
        return (query,)
    sized = f"{query}&_count={SERVER_PAGE_SIZE}"
    include = SERVER_INCLUDES.get(part)
    if include is None:
        return (sized,)
    return (f"{sized}&_include={include}", sized)
