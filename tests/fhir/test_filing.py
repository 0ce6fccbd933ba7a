"""A part's Filing files a record exactly as filing each parsed resource in turn did, cached or not."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from cds_service.fhir.assemble import OTHER_PATIENT, PartCache, file_filing, filing
from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from tests.rules.scenario import administration, medication_request, patient

_MA = parse_resource(administration("isatuximab", "2026-09-01", "isa-1"))
_MA_AGAIN = parse_resource(administration("isatuximab", "2026-09-15", "isa-1"))  # the same id, later
_MA_NO_ID = parse_resource({k: v for k, v in administration("isatuximab", "2026-09-08", "x").items() if k != "id"})
_MEDICATION = parse_resource({"resourceType": "Medication", "id": "med-1", "code": {"text": "dexamethasone"}})
_ORDER = parse_resource(medication_request("pomalidomide 4 mg", date(2026, 9, 1), "pom-1"))
_PATIENT = parse_resource(patient())
_OTHER_PATIENT = parse_resource({**patient(), "id": "pat-7"})
_ITEMS = {
    "medicationAdministrations": [("MedicationAdministration", _MA), ("MedicationAdministration", _MA_AGAIN),
                                  ("MedicationAdministration", _MA_NO_ID), ("Medication", _MEDICATION),
                                  ("MedicationAdministration", "does not validate"),
                                  ("MedicationAdministration", OTHER_PATIENT)],
    "medicationRequests": [("MedicationRequest", _ORDER), ("Medication", _MEDICATION),
                           ("MedicationRequest", "does not validate")],
    "patient": [("Patient", _PATIENT), ("Patient", _OTHER_PATIENT), ("Medication", _MEDICATION),
                ("Patient", "does not validate")],
}
_LISTS = {"medicationAdministrations": "medication_administrations", "medicationRequests": "medication_requests"}


def _filed_one_by_one(record: PatientRecord, part: str, parsed) -> None:
    """The filing rule, one resource at a time, as assemble.file_part wrote it before Filing."""
    for kind, item in parsed:
        if isinstance(item, str):
            record.skipped.append((kind, item))
        elif part == "patient" and kind == "Patient":
            record.patient = item
        else:
            if kind == part_type(part):
                getattr(record, _LISTS[part]).append(item)
            if item.id:
                record.referenced[f"{item.get_resource_type()}/{item.id}"] = item


def part_type(part: str) -> str:
    return {"medicationAdministrations": "MedicationAdministration", "medicationRequests": "MedicationRequest",
            "patient": "Patient"}[part]


def _state(record: PatientRecord):
    return (record.patient, record.medication_administrations, record.medication_requests,
            list(record.referenced.items()),
            [(s[0], s[1]) if isinstance(s, tuple) else (s.resource_type, s.reason) for s in record.skipped])


def _drafted() -> PatientRecord:
    record = PatientRecord(patient_id="pat-42")
    record.referenced["MedicationAdministration/isa-1"] = _ORDER  # a draft's entry the part overrides
    return record


@pytest.mark.parametrize("part", sorted(_ITEMS))
def test_filing_files_as_one_resource_at_a_time_in_every_order(part):
    for parsed in itertools.permutations(_ITEMS[part]):
        one_by_one, filed = _drafted(), _drafted()
        _filed_one_by_one(one_by_one, part, parsed)
        file_filing(filed, filing(part, list(parsed)))
        assert _state(filed) == _state(one_by_one)


def test_a_cached_filing_files_each_call_s_record_alike_and_shares_no_list():
    cache = PartCache()
    value = {"resourceType": "Bundle", "type": "searchset",
             "entry": [{"resource": administration("isatuximab", "2026-09-01", "isa-1")}]}
    records = [PatientRecord(patient_id="pat-42") for _ in range(2)]
    for record in records:
        gap, filed, link = cache.read_filing("medicationAdministrations", value, None, "pat-42")
        assert (gap, link) == (None, None)
        file_filing(record, filed)
    first, second = records
    assert [r.id for r in first.medication_administrations] == ["isa-1"]
    assert first.medication_administrations == second.medication_administrations
    assert first.medication_administrations is not second.medication_administrations
    assert first.referenced == second.referenced and first.referenced is not second.referenced


def test_a_value_that_cannot_be_used_has_no_filing():
    gap, filed, _ = PartCache().read_filing("medicationAdministrations", {"resourceType": "OperationOutcome"})
    assert gap and filed is None
