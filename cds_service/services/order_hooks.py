"""order-select and order-sign: the dexamethasone rules for patients on trial NCT06561854."""

from __future__ import annotations

from typing import Any

from cds_service.cards.dexamethasone import order_cards
from cds_service.fhir import raw as safe
from cds_service.fhir.assemble import Parse, prefetched_none
from cds_service.fhir.parse import parse_resource
from cds_service.fhir.prefetch import templates
from cds_service.fhir.record import PatientRecord
from cds_service.hooks.registry import ServiceDefinition
from cds_service.hooks.request import HookRequest
from cds_service.knowledge.model import Knowledge
from cds_service.rules.dexamethasone import evaluate_orders, orders_could_be_dex
from cds_service.services.base import ServiceCall

_PARTS = ("patient", "medicationRequests", "medicationAdministrations", "researchSubjects", "carePlans")
# The history the rules read: the drugs that tell the regimen and cycle 1 day 1 (not past dexamethasone).
_DRUGS = ("isatuximab", "pomalidomide", "carfilzomib")

_DESCRIPTION = (
    "Checks dexamethasone orders of patients on trial NCT06561854 (relapsed/refractory myeloma, "
    "ICARIA or IKEMA). Warns when dexamethasone is ordered from cycle 3 on for a patient in arm B, "
    "the dexamethasone-free arm, or when an order would run into cycle 3; notes a dose that differs "
    "from the regimen; says what is missing when the arm or cycle cannot be verified."
)


def _raw_orders(call: ServiceCall) -> dict[str, dict[str, Any]]:
    """The draft orders as the client sent them, by `Type/id`: an update suggestion starts from these."""
    found = {}
    for raw in safe.iter_resources(call.request.draft_orders):
        # Unvalidated: an id that is not a string names no order a suggestion could update.
        resource_id = safe.text(raw, "id")
        if resource_id is not None:
            found[f"{safe.resource_type(raw)}/{resource_id}"] = raw
    return found


def _selections(request: HookRequest) -> tuple[str, ...]:
    return request.selections if request.hook == "order-select" else ()


def no_card_because(request: HookRequest, drafts: PatientRecord, knowledge: Knowledge,
                    parse: Parse = parse_resource) -> str | None:
    """Why no card can come, before the history is read: no draft could be dexamethasone, or the prefetch
    holds the patient's enrolments and there are none (a patient in no study, as most are).

    Exactly where `evaluate` would answer no card: `evaluate_orders` finds nothing without a draft that
    may be dexamethasone, nor without a ResearchSubject (tests/services/test_no_card_because.py runs the
    scenario tables both ways). A missing, paged or unreadable researchSubjects prefetch decides nothing.
    """
    if not orders_could_be_dex(drafts, knowledge, _selections(request)):
        return "no draft order may be dexamethasone"
    if prefetched_none(request, "researchSubjects"):
        return "no enrolment in any study"
    return None


def evaluate(call: ServiceCall) -> list[dict[str, Any]]:
    """Cards for the draft orders of a call (on order-select, the selected ones)."""
    findings = evaluate_orders(call.record, call.knowledge, call.today, call.zone, _selections(call.request),
                               clock_of=call.clock_of)
    return order_cards(findings, call.knowledge, _raw_orders(call))


ORDER_SELECT = ServiceDefinition(
    id="dex-free-order-select",
    hook="order-select",
    title="NCT06561854 dexamethasone check (order selected)",
    description=_DESCRIPTION,
    prefetch=templates(*_PARTS),
    evaluate=evaluate,
    needs=_PARTS,
    drugs=_DRUGS,
    no_card_because=no_card_because,
)

ORDER_SIGN = ServiceDefinition(
    id="dex-free-order-sign",
    hook="order-sign",
    title="NCT06561854 dexamethasone check (before signing)",
    description=_DESCRIPTION,
    prefetch=templates(*_PARTS),
    evaluate=evaluate,
    needs=_PARTS,
    drugs=_DRUGS,
    no_card_because=no_card_because,
)
