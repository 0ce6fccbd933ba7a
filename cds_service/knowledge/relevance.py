"""Which raw FHIR resources the rules can use, decided before validation (validation is the costly part).

Medication requests, administrations and statements matter when their drug is an anti-myeloma drug (the
regimen drugs and the prior lines of therapy) or when it is given by reference (the referenced Medication
decides, later); Observations when their code is one the rules read (ECOG, response, pregnancy and
breastfeeding status, body surface area and weight). Every other part is kept whole: conditions,
procedures, enrolments and care plans are few and all of them may matter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cds_service.knowledge.model import Knowledge

MEDICATION_PARTS = ("medicationRequests", "medicationAdministrations", "medicationStatements")
OBSERVATION_SETS = ("ecog", "response-observation", "pregnancy-status", "breastfeeding-status",
                    "body-surface-area", "body-weight")


def relevance(knowledge: Knowledge) -> Callable[[str, dict[str, Any]], bool]:
    """The `keep(part, raw)` predicate for record assembly."""
    therapy = knowledge.codes("myeloma-therapy")
    observations = [knowledge.codes(key) for key in OBSERVATION_SETS]

    def keep(part: str, raw: dict[str, Any]) -> bool:
        if part in MEDICATION_PARTS:
            if "medicationReference" in raw:
                return True
            concept = raw.get("medicationCodeableConcept")
            return isinstance(concept, dict) and therapy.match_concept(concept) is not None
        if part == "observations":
            concept = raw.get("code")
            return isinstance(concept, dict) and any(s.match_codings(concept.get("coding") or []) or
                                                     s.match_text(concept.get("text"))
                                                     for s in observations)
        return True

    return keep
