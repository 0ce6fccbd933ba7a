"""Which raw FHIR resources the rules can use, decided before validation (validation is the costly part).

Medication requests, administrations and statements matter when their drug is one the service reads
(the order hooks: the regimen drugs; patient-view: every anti-myeloma drug, for the lines of therapy)
or when it is given by reference (the referenced Medication decides, later); Observations when their
code is one the eligibility criteria read (knowledge/reads.py: ECOG, response, pregnancy and breastfeeding
status). Every other part is kept whole: conditions, procedures, enrolments and care plans are few and
all of them may matter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cds_service.fhir.prefetch import STUDY_KEY, with_codes, with_study
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.reads import MEDICATION_SET, OBSERVATION_SETS
from cds_service.knowledge.terminology import CodeSet

MEDICATION_PARTS = frozenset({"medicationRequests", "medicationAdministrations", "medicationStatements"})


def narrowed(knowledge: Knowledge) -> Callable[[str, str], str]:
    """Prefetch templates restricted to what the rules read: Observations by the codes of the observation
    value sets (a myeloma patient has thousands of laboratory results; none of them is read), and the
    study key by the study's NCT number, read from its ResearchStudy artifact.

    Codes that carry an ordinalValue are answers (the ECOG scores), not Observation codes: left out.
    """
    codings = {(system, code) for key in OBSERVATION_SETS
               for (system, code) in knowledge.codes(key).codes
               if (system, code) not in knowledge.codes(key).ordinals}

    def rewrite(part: str, template: str) -> str:
        if part == STUDY_KEY:
            return with_study(template, knowledge.study.nct_id)
        return with_codes(template, codings) if part == "observations" else template

    return rewrite


def relevance(knowledge: Knowledge, drugs: tuple[str, ...] = (MEDICATION_SET,)
              ) -> Callable[[str, dict[str, Any]], bool]:
    """The `keep(part, raw)` predicate for record assembly; `drugs`: ValueSet ids of the drugs read."""
    drug_set = CodeSet.union("drugs", (knowledge.codes(key) for key in drugs))
    observation_set = CodeSet.union("observations", (knowledge.codes(key) for key in OBSERVATION_SETS))

    @functools.lru_cache(maxsize=4096)
    def drug_named(text: str | None, codings: tuple[tuple[Any, Any, Any], ...]) -> bool:
        # A medication list repeats the same few drugs: each is matched once.
        concept = {"text": text, "coding": [{"system": s, "code": c, "display": d} for s, c, d in codings]}
        return drug_set.match_concept(concept) is not None

    def keep(part: str, raw: dict[str, Any]) -> bool:
        if part in MEDICATION_PARTS:
            if "medicationReference" in raw:
                return True
            concept = raw.get("medicationCodeableConcept")
            if not isinstance(concept, dict):
                return False
            # Unvalidated JSON: only strings are matched (a coding of another type names no drug).
            listed = concept.get("coding")
            if not listed:  # a text-only medication, as most of a history is: no codings to gather
                text = concept.get("text")
                return drug_named(text if isinstance(text, str) else None, ())
            codings = tuple((_text(c.get("system")), _text(c.get("code")), _text(c.get("display")))
                            for c in (listed if isinstance(listed, list) else []) if isinstance(c, dict))
            return drug_named(_text(concept.get("text")), codings)
        if part == "observations":
            concept = raw.get("code")
            if not isinstance(concept, dict):
                return False
            listed = concept.get("coding")
            return observation_set.match_concept({
                "text": _text(concept.get("text")),
                "coding": [{key: _text(c.get(key)) for key in ("system", "code", "display")}
                           for c in (listed if isinstance(listed, list) else []) if isinstance(c, dict)],
            }) is not None
        return True

    return keep


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
