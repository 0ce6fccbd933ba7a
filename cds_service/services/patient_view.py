"""patient-view: trial status for patients on NCT06561854, eligibility screening for the others."""

from __future__ import annotations

from typing import Any

from cds_service.cards.dexamethasone import enrolment_unverified, trial_status
from cds_service.cards.eligibility import eligibility_card
from cds_service.fhir.assemble import Parse, add_prefetched, prefetched_none
from cds_service.fhir.parse import parse_resource
from cds_service.fhir.prefetch import TEMPLATES, templates
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.registry import ServiceDefinition
from cds_service.hooks.request import HookRequest
from cds_service.knowledge.model import Knowledge
from cds_service.rules.dexamethasone import situation
from cds_service.rules.eligibility import NOT_ELIGIBLE, assess, has_myeloma
from cds_service.rules.enrolment import Enrolment, enrolment_doubt
from cds_service.rules.exposure import chart_findings
from cds_service.rules.facts import Options
from cds_service.services.base import ServiceCall

_PARTS = tuple(TEMPLATES)
# Without these no card can be decided (who is on study, in which cycle, who has myeloma): 412. The other
# parts (observations, procedures, statements) only inform some eligibility criteria, which then say
# "unknown" and name the gap rather than the whole call failing.
_NEEDS = ("patient", "conditions", "medicationRequests", "medicationAdministrations", "researchSubjects",
          "carePlans")


def _eligibility(call: ServiceCall, enrolled: Enrolment | None) -> list[dict[str, Any]]:
    """The card for a patient not on study treatment: none without myeloma, none once the study ended for
    them, none when decisively not eligible unless CDS_SHOW_NOT_ELIGIBLE is set."""
    if enrolled is not None and enrolled.phase != "screening":
        return []
    if not has_myeloma(call.record, call.knowledge):
        return []
    assessment = assess(call.record, call.knowledge, call.today, Options.from_config(call.config))
    if assessment.overall == NOT_ELIGIBLE and not call.config.show_not_eligible:
        return []
    return [eligibility_card(assessment, call.knowledge, enrolled)]


def no_card_because(request: HookRequest, record: PatientRecord, knowledge: Knowledge,
                    parse: Parse = parse_resource) -> str | None:
    """Why no card can come before the rest of the record is read: the prefetch holds the patient's
    enrolments and conditions, there is no enrolment and no multiple myeloma condition (the trial-status
    card needs the one, the eligibility card the other). Only the conditions are read to tell; exactly
    where `evaluate` answers no card (tests/services/test_no_card_because.py)."""
    if not prefetched_none(request, "researchSubjects"):
        return None
    # A record of its own: the call's record gets the conditions again, with the rest, if this answers None.
    conditions = PatientRecord(patient_id=record.patient_id)
    if not add_prefetched(conditions, request, "conditions", parse=parse) \
            or has_myeloma(conditions, knowledge):
        return None
    return "no enrolment in any study and no multiple myeloma condition"


def evaluate(call: ServiceCall) -> list[dict[str, Any]]:
    """The trial-status card for a patient on study treatment (saying what the record shows against the arm:
    dexamethasone given in a cycle without it, an arm A cycle without it by its last day); "could not verify"
    when no enrolment is readable but one the record cannot read may be it; the eligibility card for the
    others."""
    where = situation(call.record, call.knowledge, call.today, call.zone, call.clock_of)
    if where is None:
        # No readable enrolment, but one the record cannot read may be it: never silent, never screened.
        doubt = enrolment_doubt(call.record, call.knowledge)
        if doubt is not None:
            return [enrolment_unverified(doubt, call.knowledge, f"Patient/{call.record.patient_id}")]
        return _eligibility(call, None)
    if where.enrolled.on_treatment:
        exposure = chart_findings(call.record, call.knowledge, call.today, call.zone)
        return [trial_status(where, call.knowledge, call.today, exposure)]
    return _eligibility(call, where.enrolled)


PATIENT_VIEW = ServiceDefinition(
    id="dex-free-patient-view",
    hook="patient-view",
    title="NCT06561854 trial status and eligibility",
    description=(
        "For a patient on trial NCT06561854: arm, regimen, current cycle and the dexamethasone plan "
        "(arm B: none from cycle 3). For a patient with relapsed multiple myeloma not on the trial: "
        "whether they may be eligible, criterion by criterion, with what needs review."
    ),
    prefetch=templates(*_PARTS),
    evaluate=evaluate,
    needs=_NEEDS,
    no_card_because=no_card_because,
)
