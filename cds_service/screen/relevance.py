"""Which resources bulk screening keeps, for which patient, and the elements of them it keeps.

A resource is kept when a criterion can read it: a Patient or ResearchSubject; a Condition, Observation or
Procedure whose code is in one of the value sets the criteria read (knowledge/reads.py), or a Condition
claiming an mCODE cancer profile; a medication resource
naming an anti-myeloma drug (or a Medication elsewhere, checked when the patient is assessed). Matching is
the criteria's own (`CodeSet.match_concept`), on the raw JSON, so the screening record holds exactly what
the criteria would use. Kept resources are cut down to the elements the criteria read (like FHIR's
`_elements`): validation costs time per element, and the rest is never looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cds_service.fhir import raw as safe
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.reads import CONDITION_SETS, MEDICATION_SET, OBSERVATION_SETS, PROCEDURE_SETS
from cds_service.rules.facts import cancer_profile, matcher

MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationAdministration", "MedicationStatement"})
# Resources of no patient that patients' resources point to.
SHARED_TYPES = frozenset({"Medication", "ResearchStudy"})

_COMMON = ("resourceType", "id", "subject")
_MEDICATION = ("status", "medicationCodeableConcept", "medicationReference", "contained")
# The elements the criteria read, by resource type; anything else is dropped before validation. A criterion
# that reads a new element adds it here (tests/screen compares screening records with full ones).
ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"resourceType", "id", "birthDate", "gender", "deceasedBoolean",
                          "deceasedDateTime"}),
    "Condition": frozenset({*_COMMON, "meta", "code", "clinicalStatus", "verificationStatus",
                            "onsetDateTime", "onsetPeriod", "recordedDate", "abatementDateTime",
                            "abatementPeriod"}),
    "Observation": frozenset({*_COMMON, "status", "code", "effectiveDateTime", "effectivePeriod",
                              "effectiveInstant", "issued", "valueInteger", "valueQuantity",
                              "valueCodeableConcept", "valueString"}),
    "Procedure": frozenset({*_COMMON, "status", "code", "performedDateTime", "performedPeriod"}),
    "MedicationRequest": frozenset({*_COMMON, *_MEDICATION, "intent", "authoredOn", "dosageInstruction",
                                    "dispenseRequest"}),
    "MedicationAdministration": frozenset({*_COMMON, *_MEDICATION, "effectiveDateTime", "effectivePeriod",
                                           "dosage"}),
    "MedicationStatement": frozenset({*_COMMON, *_MEDICATION, "effectiveDateTime", "effectivePeriod",
                                      "dosage"}),
    "ResearchSubject": frozenset({"resourceType", "id", "status", "study", "individual", "assignedArm",
                                  "actualArm", "period", "identifier"}),
    "Medication": frozenset({"resourceType", "id", "code", "ingredient", "contained"}),
    "ResearchStudy": frozenset({"resourceType", "id", "status", "identifier", "category", "phase", "title"}),
}
PATIENT_TYPES = frozenset(ELEMENTS) - SHARED_TYPES
_CODE_SETS = {"Condition": CONDITION_SETS, "Observation": OBSERVATION_SETS, "Procedure": PROCEDURE_SETS}
_PATIENT_ELEMENTS = ("subject", "patient", "individual")


def reference_key(reference: str) -> str | None:
    """`Type/id` of a relative or absolute reference (a `_history` version is dropped); None for others."""
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-1] or not parts[-2][:1].isupper():
        return None
    return f"{parts[-2]}/{parts[-1]}"


def patient_key(raw: dict[str, Any], aliases: dict[str, str], full_url: str | None = None) -> str | None:
    """The id of the patient a resource belongs to (a Patient: its own), or None."""
    if raw.get("resourceType") == "Patient":
        return safe.text(raw, "id") or full_url
    for element in _PATIENT_ELEMENTS:
        value = raw.get(element)
        reference = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(reference, str) or not reference:
            continue
        key = aliases.get(reference) or reference_key(reference)
        if key and key.startswith("Patient/"):
            return key.removeprefix("Patient/")
    return None


def _contained(raw: dict[str, Any], reference: str) -> dict[str, Any] | None:
    for item in safe.objects(raw, "contained"):
        if f"#{safe.text(item, 'id')}" == reference:
            return item
    return None


def medication_matches(medication: dict[str, Any], knowledge: Knowledge) -> bool:
    """Whether a Medication (raw) is an anti-myeloma drug, by its code or an ingredient's."""
    found = matcher(knowledge)
    if _matches(found, MEDICATION_SET, medication.get("code")):
        return True
    for ingredient in safe.objects(medication, "ingredient"):
        if _matches(found, MEDICATION_SET, ingredient.get("itemCodeableConcept")):
            return True
        if ingredient.get("itemReference"):
            return True  # an ingredient elsewhere: the criteria resolve it
    return False


def _matches(found: Any, key: str, value: Any) -> bool:
    # Raw JSON: the matcher is given the concept's readable parts only (strings where R4 has strings).
    concept = safe.concept(value)
    return concept is not None and found.matches(key, concept)


def external_medication(raw: dict[str, Any]) -> str | None:
    """The reference of a medication resource's Medication when it is not contained."""
    value = raw.get("medicationReference")
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) and reference and not reference.startswith("#") else None


def keep(raw: dict[str, Any], knowledge: Knowledge) -> bool:
    """Whether a patient's resource can matter to a criterion (see the module docstring)."""
    kind = raw.get("resourceType")
    if kind in ("Patient", "ResearchSubject"):
        return True
    found = matcher(knowledge)
    profiles = [p for p in safe.items(safe.obj(raw, "meta"), "profile") if isinstance(p, str)]
    if kind == "Condition" and cancer_profile({"meta": {"profile": profiles}}):
        return True
    if kind in _CODE_SETS:
        return any(_matches(found, key, raw.get("code")) for key in _CODE_SETS[kind])
    if kind in MEDICATION_TYPES:
        if raw.get("medicationCodeableConcept") is not None:
            return _matches(found, MEDICATION_SET, raw["medicationCodeableConcept"])
        value = raw.get("medicationReference")
        reference = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(reference, str) or not reference:
            return False
        if reference.startswith("#"):
            contained = _contained(raw, reference)
            return contained is not None and medication_matches(contained, knowledge)
        return True  # a Medication elsewhere: checked when the patient is assessed
    return False


_PLAIN_CODE = re.compile(r"[A-Za-z0-9.\-]+")
_MAX_NEEDLES = 48
_ICD = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})


def _written(system: str, code: str) -> set[str]:
    """The ways a code may be written in the data (ICD-10 codes with or without their dot)."""
    if system in _ICD and len(code) > 3 and "." not in code:
        return {code, f"{code[:3]}.{code[3:]}"}
    return {code}


def line_filter(kind: str, knowledge: Knowledge) -> Callable[[bytes], bool] | None:
    """For an NDJSON file of one resource type: which raw lines may matter, without decoding them.

    Types no criterion reads: none. Types read through value sets that are plain code lists (codes and code
    prefixes; no names, no regex, a few dozen codes at most, such as the Observation sets): only the lines
    holding one of the codes, case-insensitively — a line without any cannot match. Lines with non-ASCII
    text or JSON escapes are always decoded. Otherwise every line is decoded: searching many names in the
    raw text costs more than decoding the JSON (measured).
    """
    if kind not in PATIENT_TYPES and kind not in SHARED_TYPES:
        return lambda line: False
    keys = _CODE_SETS.get(kind)
    if keys is None:
        return None
    needles: set[bytes] = set()
    for key in keys:
        codes = knowledge.codes(key)
        if codes.patterns or codes.names:
            return None
        for system, code in codes.codes | codes.prefixes:
            if not _PLAIN_CODE.fullmatch(code):
                return None
            needles |= {w.lower().encode() for w in _written(system, code)}
    if not needles:
        return lambda line: False
    if len(needles) > _MAX_NEEDLES:
        return None
    pattern = re.compile(b"|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))

    def accept(line: bytes) -> bool:
        if not line.isascii() or b"\\u" in line:
            return True
        return pattern.search(line.lower()) is not None

    return accept


def _dosage(dosage: Any) -> Any:
    """A Dosage cut down to what the criteria read: its route and the bounds of its timing."""
    if not isinstance(dosage, dict):
        return dosage
    kept: dict[str, Any] = {key: dosage[key] for key in ("route",) if key in dosage}
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if isinstance(repeat, dict) and "boundsPeriod" in repeat:
        kept["timing"] = {"repeat": {"boundsPeriod": repeat["boundsPeriod"]}}
    return kept


def project(raw: dict[str, Any]) -> dict[str, Any]:
    """The resource with only the elements the criteria read (a Dosage: its route and timing bounds)."""
    wanted = ELEMENTS.get(safe.resource_type(raw) or "")
    if wanted is None:
        return raw
    kept = {key: value for key, value in raw.items() if key in wanted}
    for key in ("dosageInstruction", "dosage"):
        value = kept.get(key)
        if isinstance(value, list):
            kept[key] = [_dosage(d) for d in value]
        elif isinstance(value, dict):
            kept[key] = _dosage(value)
    return kept
