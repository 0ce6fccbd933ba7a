"""What a medication order or administration is for: the drug (by code, ingredient or name), resolved
through `medicationReference` (contained, in the draft Bundle, or read from the server by the FHIR layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.terminology import PREFIX_HIERARCHIES, CodeSet, Match


@dataclass(frozen=True)
class Medication:
    """The medication of a request/administration/statement as far as the record tells it."""

    concept: Any  # CodeableConcept (medicationCodeableConcept, or the Medication's code)
    resource: Any  # the Medication resource when referenced and found
    reference: str | None  # the medicationReference as written
    unresolved: bool  # a reference that points nowhere the record knows

    @property
    def known(self) -> bool:
        return self.concept is not None or self.resource is not None

    def label(self) -> str:
        """A human name for the card: the text or first display of the concept or the Medication's code."""
        for concept in (self.concept, getattr(self.resource, "code", None)):
            if isinstance(concept, dict):
                return concept["text"]
            if concept is None:
                continue
            if getattr(concept, "text", None):
                return concept.text
            for coding in concept.coding or []:
                if coding.display:
                    return coding.display
        return "medication not named"


def medication_of(resource: Any, record: PatientRecord) -> Medication:
    """The medication of a MedicationRequest / MedicationAdministration / MedicationStatement."""
    concept = getattr(resource, "medicationCodeableConcept", None)
    if concept is not None:
        return Medication(concept=concept, resource=None, reference=None, unresolved=False)
    ref = getattr(resource, "medicationReference", None)
    if ref is None:
        return Medication(concept=None, resource=None, reference=None, unresolved=False)
    found = record.resolve(ref.reference, within=resource)
    if found is not None and found.get_resource_type() == "Medication":
        return Medication(concept=found.code, resource=found, reference=ref.reference, unresolved=False)
    # A display on the reference is the last thing the record says about the drug.
    display = {"text": ref.display} if ref.display else None
    return Medication(concept=display, resource=None, reference=ref.reference, unresolved=True)


def medication_concepts(resource: Any, record: PatientRecord) -> list[Any]:
    """The concepts naming what a medication resource gives: its code, or its Medication's code and
    ingredients (contained, or reachable in the record)."""
    concept = getattr(resource, "medicationCodeableConcept", None)
    if concept is not None:
        return [concept]
    reference = getattr(resource, "medicationReference", None)
    medication = record.resolve(reference.reference, within=resource) if reference else None
    if medication is None:
        return []
    found = [medication.code] if getattr(medication, "code", None) else []
    for ingredient in getattr(medication, "ingredient", None) or []:
        if ingredient.itemCodeableConcept is not None:
            found.append(ingredient.itemCodeableConcept)
        elif ingredient.itemReference is not None:
            item = record.resolve(ingredient.itemReference.reference, within=resource) or \
                record.resolve(ingredient.itemReference.reference, within=medication)
            if item is not None and getattr(item, "code", None) is not None:
                found.append(item.code)
    return found


def match_drug(resource: Any, record: PatientRecord, codes: CodeSet) -> Match | None:
    """How a resource's medication is recognised as a drug of `codes`: its code, an ingredient, or a name
    (the display of an unresolvable reference, as a last resort)."""
    for concept in medication_concepts(resource, record):
        found = codes.match_concept(concept)
        if found:
            return found
    medication = medication_of(resource, record)
    if isinstance(medication.concept, dict):
        return codes.match_text(medication.concept["text"])
    return None


@dataclass(frozen=True)
class DrugDecision:
    """Whether a medication resource is a drug of a set, and what decided it (for the card and the tests)."""

    found: Match | None
    other: str | None = None  # the coding that says it is another drug, when one decided


def _codings(concepts: list[Any]) -> list[Any]:
    return [c for concept in concepts for c in (getattr(concept, "coding", None) or [])]


def identify_drug(resource: Any, record: PatientRecord, codes: CodeSet) -> DrugDecision:
    """Is this resource's medication a drug of `codes`? A drug code decides over names.

    1. A coding in the set (the order's, its Medication's code or an ingredient's) → yes, by code.
    2. A recognised drug coding — in a code system the set itself is built on (RxNorm, ATC, SNOMED CT; site
       code systems added through CDS_LOCAL_VALUESETS too) — that is not in the set names another drug,
       and decides "no" whatever the text says ("DXM" on a dextromethorphan order coded ATC R05DA09):
       - unless that coding's own display names the drug (a product code the set does not list, e.g. an
         RxNorm SBD "Decadron 4 MG Oral Tablet"): yes, by that display;
       - an RxNorm or SNOMED CT coding without a display does not say which substance it is (those systems
         have far more products than the set lists), so it does not decide and names are read. ATC does:
         it has one code per substance and use, and the set holds dexamethasone's systemic one.
    3. Only codings of systems unknown to the set (a local code system), or none: names decide (the text
       and displays, or the display of an unresolvable reference).
    """
    concepts = medication_concepts(resource, record)
    for concept in concepts:
        found = codes.match_codings(getattr(concept, "coding", None) or [])
        if found:
            return DrugDecision(found)
    systems = codes.code_systems
    other = None
    for coding in _codings(concepts):
        system = codes.canonical_system(coding.system)
        if system not in systems or not coding.code:
            continue
        named = codes.match_text(coding.display)
        if named:
            return DrugDecision(named)
        if coding.display or system in PREFIX_HIERARCHIES:
            other = other or f"coded {coding.display or coding.code} ({coding.code}, {system})"
    if other:
        return DrugDecision(None, other)
    return DrugDecision(match_drug(resource, record, codes))
