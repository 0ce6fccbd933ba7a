"""Assembling one PatientRecord per call: draft orders from the context, then the prefetch."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B.resource import Resource

from cds_service.errors import CdsError
from cds_service.fhir.parse import bundle_resources, parse_resource
from cds_service.fhir.prefetch import TEMPLATES
from cds_service.fhir.record import PatientRecord, Skipped
from cds_service.hooks.request import HookRequest
from cds_service.logs import log_event

log = logging.getLogger(__name__)

# Record part → PatientRecord attribute (the patient part is a single resource).
_LIST_FIELDS = {
    "conditions": "conditions",
    "medicationRequests": "medication_requests",
    "medicationAdministrations": "medication_administrations",
    "medicationStatements": "medication_statements",
    "observations": "observations",
    "procedures": "procedures",
    "researchSubjects": "research_subjects",
    "carePlans": "care_plans",
}


def prefetch_gap(value: Any) -> str | None:
    """Why a prefetch value cannot be used (absent, null, an OperationOutcome), or None if it can."""
    if value is None:
        return "not prefetched"
    if not isinstance(value, dict) or "resourceType" not in value:
        return "prefetch value is not a FHIR resource"
    if value["resourceType"] == "OperationOutcome":
        return "the client could not prefetch it"
    return None


def assemble_record(request: HookRequest, needs: Iterable[str]) -> PatientRecord:
    """The record for a call from the context and the prefetch; 412 if a needed part is missing."""
    record = PatientRecord(patient_id=request.patient_id, selections=request.selections)
    _add_draft_orders(record, request.draft_orders)
    for part in TEMPLATES:
        value = request.prefetch.get(part)
        gap = prefetch_gap(value)
        if gap:
            record.missing[part] = gap
            continue
        add_part(record, part, bundle_resources(value))
    unmet = [part for part in needs if part in record.missing]
    if unmet:
        raise CdsError(412, "Data needed for a decision could not be obtained: "
                       + "; ".join(f"{part} ({record.missing[part]})" for part in unmet)
                       + ". Send it as prefetch, or send fhirServer and fhirAuthorization.",
                       code="incomplete", expression=tuple(f"prefetch.{p}" for p in unmet))
    return record


def add_part(record: PatientRecord, part: str, resources: Iterable[dict[str, Any]]) -> None:
    """Parse and file the resources of one record part; other types go to `referenced`."""
    expected = TEMPLATES[part][0]
    for raw in resources:
        resource = _parse_or_skip(record, raw)
        if resource is None:
            continue
        if resource.get_resource_type() != expected:
            remember(record, resource)
        elif part == "patient":
            record.patient = resource
        else:
            getattr(record, _LIST_FIELDS[part]).append(resource)
            remember(record, resource)


def remember(record: PatientRecord, resource: Resource) -> None:
    """Make a resource reachable by reference (`Type/id`)."""
    if getattr(resource, "id", None):
        record.referenced[f"{resource.get_resource_type()}/{resource.id}"] = resource


def _parse_or_skip(record: PatientRecord, raw: dict[str, Any]) -> Resource | None:
    try:
        return parse_resource(raw)
    except ValueError as exc:
        kind = str(raw.get("resourceType", "unknown"))[:40]
        record.skipped.append(Skipped(kind, str(exc)))
        log_event(log, "resource skipped", logging.WARNING, resourceType=kind, reason=str(exc))
        return None


def _add_draft_orders(record: PatientRecord, bundle: Any) -> None:
    for entry in (bundle or {}).get("entry") or []:
        raw = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(raw, dict):
            continue
        try:
            resource = parse_resource(raw)
        except ValueError as exc:
            record.unreadable_orders.append(raw)
            log_event(log, "draft order unreadable", logging.WARNING,
                      resourceType=str(raw.get("resourceType", "unknown"))[:40], reason=str(exc))
            continue
        if resource.get_resource_type() == "Medication":
            remember(record, resource)
        else:
            record.draft_orders.append(resource)
            remember(record, resource)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            record.referenced[full_url] = resource
