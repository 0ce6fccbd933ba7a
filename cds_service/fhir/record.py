"""PatientRecord: everything the rules may read about one patient, assembled once per call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.researchsubject import ResearchSubject
from fhir.resources.R4B.resource import Resource

# The parts of a record, named as the prefetch keys that fill them.
PARTS = (
    "patient",
    "conditions",
    "medicationRequests",
    "medicationAdministrations",
    "medicationStatements",
    "observations",
    "procedures",
    "researchSubjects",
    "carePlans",
)


@dataclass(frozen=True)
class Skipped:
    """A resource left out of the record: its type and why (never its content: it may hold PHI)."""

    resource_type: str
    reason: str
    # False for another patient's resource (left out on purpose); True for one that is not valid FHIR R4,
    # which may hold what the rules need (a ResearchSubject that may be this study's enrolment).
    unreadable: bool = True


@dataclass
class PatientRecord:
    """One patient's data for one call, parsed with the FHIR R4B models.

    Rules read it and nothing else: no rule does I/O. `missing` names parts that could not be had
    (with why) and holds no data for them, not even part of it; a hook call does not get this far
    without the parts its service needs, but bulk screening does, and its rules answer "unknown" for
    them.
    """

    patient_id: str
    patient: Patient | None = None
    conditions: list[Condition] = field(default_factory=list)
    medication_requests: list[MedicationRequest] = field(default_factory=list)
    medication_administrations: list[MedicationAdministration] = field(default_factory=list)
    medication_statements: list[MedicationStatement] = field(default_factory=list)
    # Only bulk trial monitoring fills it (no hook prefetches dispenses).
    medication_dispenses: list[MedicationDispense] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    procedures: list[Procedure] = field(default_factory=list)
    research_subjects: list[ResearchSubject] = field(default_factory=list)
    care_plans: list[CarePlan] = field(default_factory=list)
    # The orders being written (context.draftOrders), parsed; their ids are those of the client.
    draft_orders: list[Resource] = field(default_factory=list)
    # order-select: references (`MedicationRequest/123`) of the orders just selected.
    selections: tuple[str, ...] = ()
    # Draft orders that could not be parsed even leniently: kept raw so a rule can say
    # "could not verify" instead of never seeing them.
    unreadable_orders: list[dict[str, Any]] = field(default_factory=list)
    # Resources reachable by reference (Medication, ResearchStudy, …), keyed `Type/id` and full URL.
    referenced: dict[str, Resource] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    # References (`Medication/12`, `#med`, …) that could not be resolved, with why: the call goes on,
    # and a rule that needs one says it could not verify.
    unresolved: dict[str, str] = field(default_factory=dict)
    # Where each part came from: "prefetch", "prefetch+fhirServer" (paged prefetch) or "fhirServer".
    sources: dict[str, str] = field(default_factory=dict)
    # What assembling cost: HTTP requests made to the FHIR server, and reads answered by the cache.
    fhir_requests: int = 0
    fhir_cache_hits: int = 0

    def resolve(self, reference: str | None, within: Resource | None = None) -> Resource | None:
        """The resource a reference points to: contained (`#id`) in `within`, or known to the record."""
        if not isinstance(reference, str) or not reference:
            return None
        if reference.startswith("#"):
            for contained in getattr(within, "contained", None) or []:
                if getattr(contained, "id", None) == reference[1:]:
                    return contained
            return None
        if reference in self.referenced:
            return self.referenced[reference]
        parts = reference.rstrip("/").split("/")
        if len(parts) >= 2:
            # An absolute reference, or one with a version: match on its last `Type/id`.
            if len(parts) >= 4 and parts[-2] == "_history":
                parts = parts[:-2]
            return self.referenced.get("/".join(parts[-2:]))
        return None

    def by_identifier(self, kind: str, value: str | None, system: str | None = None) -> Resource | None:
        """A known resource of a type carrying an identifier (a logical reference): same value, same system
        when both say one; None when none or several different ones do."""
        if not value:
            return None
        found = {id(r): r for r in self.referenced.values() if r.get_resource_type() == kind
                 and any(i.value == value and (system is None or i.system in (None, system))
                         for i in getattr(r, "identifier", None) or [])}
        return next(iter(found.values())) if len(found) == 1 else None
