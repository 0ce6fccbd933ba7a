"""PartCache answers as read_part does, for the same content only: any change, patient or predicate misses."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from cds_service.fhir import assemble
from cds_service.fhir.assemble import OTHER_PATIENT, PartCache, read_part
from cds_service.fhir.parse import ParseCache
from tests.rules.scenario import (
    administration,
    care_plan,
    dex_order,
    medication_request,
    patient,
    research_study,
    research_subject,
)


def _keep_drugs(part: str, raw: dict[str, Any]) -> bool:
    text = str((raw.get("medicationCodeableConcept") or {}).get("text", ""))
    return part not in ("medicationRequests", "medicationAdministrations") or "ondansetron" not in text


def _history() -> list[dict[str, Any]]:
    other = administration("isatuximab", "2026-10-27", "isa-other")
    other["subject"] = {"reference": "Patient/someone-else"}
    unreadable = administration("isatuximab", "2026-10-27", "isa-bad")
    unreadable["status"] = ["completed"]
    return [
        administration("isatuximab", "2026-09-01", "isa-1"),
        administration("ondansetron 8 mg", "2026-09-01", "ond-1"),  # not kept
        other,  # another patient's: named, never validated
        unreadable,  # does not validate: named
        {"resourceType": "Medication", "id": "med-1", "code": {"text": "dexamethasone"}},  # kept for references
        {"resourceType": "OperationOutcome", "issue": []},  # another type: never validated
    ]


PARTS = {
    "medicationAdministrations": _history(),
    "medicationRequests": [medication_request("pomalidomide 4 mg", date(2026, 9, 1), "pom-1"),
                           dex_order(date(2026, 9, 1))],
    "researchSubjects": [research_subject(), research_study()],
    "carePlans": [care_plan()],
    "patient": [patient()],
}


def _value(part: str, resources: list[dict[str, Any]], **bundle: Any) -> Any:
    """The prefetch value of a part holding these resources (the patient part is the resource itself)."""
    if part == "patient":
        return copy.deepcopy(resources[0])
    return {"resourceType": "Bundle", "type": "searchset", **bundle,
            "entry": [{"resource": copy.deepcopy(r)} for r in resources]}


def _select(cache, part, resources, keep, patient_id, *, parse=None) -> assemble.Parsed:
    """The selected resources of a part, read through the cache (as assemble_record does)."""
    gap, parsed, link = cache.read(part, _value(part, resources), keep, patient_id,
                                   *([parse] if parse else []))
    assert (gap, link) == (None, None)
    return parsed


def _expected(part, resources, keep, patient_id) -> assemble.PrefetchPart:
    return read_part(part, _value(part, resources), keep, patient_id)


def _shown(parsed: assemble.Parsed) -> list[tuple[str, Any]]:
    return [(kind, item if isinstance(item, str) else item.model_dump(mode="json")) for kind, item in parsed]


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_answer_is_read_part_s_and_so_is_the_remembered_one(part):
    cache, resources = PartCache(), PARTS[part]
    expected = _shown(_expected(part, resources, _keep_drugs, "pat-42")[1])
    assert _shown(_select(cache, part, resources, _keep_drugs, "pat-42")) == expected
    assert _shown(_select(cache, part, resources, _keep_drugs, "pat-42")) == expected


@pytest.mark.parametrize(("value", "gap"), [
    ({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]},
     "the client could not prefetch it"),
    ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": ["MedicationAdministration"]}}]},
     "unreadable entry"),
    ({"resourceType": "Bundle", "link": "next"}, "whether it has more pages cannot be told"),
], ids=["operation-outcome", "unreadable-entry", "unreadable-link"])
def test_a_gap_is_remembered_as_the_same_gap(value, gap):
    cache = PartCache()
    for _ in range(2):
        found, parsed, link = cache.read("medicationAdministrations", value, _keep_drugs, "pat-42")
        assert gap in found and (parsed, link) == ([], None)


def test_the_next_page_is_remembered_with_the_part():
    cache = PartCache()
    value = _value("medicationAdministrations", _history(),
                   link=[{"relation": "next", "url": "MedicationAdministration?page=2"}])
    for _ in range(2):
        gap, parsed, link = cache.read("medicationAdministrations", value, _keep_drugs, "pat-42")
        assert (gap, len(parsed), link) == (None, 4, "MedicationAdministration?page=2")


def test_the_administration_history_is_selected_as_expected():
    shown = _shown(_select(PartCache(), "medicationAdministrations", _history(), _keep_drugs, "pat-42"))
    assert [(kind, item if isinstance(item, str) else item["id"]) for kind, item in shown] == [
        ("MedicationAdministration", "isa-1"),
        ("MedicationAdministration", OTHER_PATIENT),
        ("MedicationAdministration", shown[2][1]),
        ("Medication", "med-1"),
    ]
    assert "does not validate" in shown[2][1]


@pytest.fixture
def selections(monkeypatch) -> list[str]:
    """The parts read_part is run on (each miss of the cache)."""
    made: list[str] = []
    real = assemble.read_part

    def counted(part, *args, **kwargs):
        made.append(part)
        return real(part, *args, **kwargs)

    monkeypatch.setattr(assemble, "read_part", counted)
    return made


def test_the_same_content_is_selected_once(selections):
    cache = PartCache()
    for _ in range(3):
        _select(cache, "medicationAdministrations", _history(), _keep_drugs, "pat-42")
    assert selections == ["medicationAdministrations"]


def _changed(history: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    changed = copy.deepcopy(history)
    first = changed[0]
    if how == "a value":
        first["effectiveDateTime"] = "2026-09-02"
    elif how == "a type":  # 1 written 1.0: equal in Python, another JSON text
        first["dosage"] = {"dose": {"value": 1.0, "unit": "mg"}}
    elif how == "an element added":
        first["note"] = [{"text": "late"}]
    elif how == "the order":
        changed.reverse()
    elif how == "one resource fewer":
        changed.pop(0)
    return changed


@pytest.mark.parametrize("how", ["a value", "a type", "an element added", "the order", "one resource fewer"])
def test_any_change_of_content_is_selected_again_and_answered_from_the_new_content(selections, how):
    cache = PartCache()
    history = _history()
    history[0]["dosage"] = {"dose": {"value": 1, "unit": "mg"}}
    _select(cache, "medicationAdministrations", history, _keep_drugs, "pat-42")
    changed = _changed(history, how)
    assert _shown(_select(cache, "medicationAdministrations", changed, _keep_drugs, "pat-42")) == \
        _shown(_expected("medicationAdministrations", changed, _keep_drugs, "pat-42")[1])
    assert len(selections) == 2  # the first content, then the changed one (the reference is read_part's own)


def test_another_patient_part_or_predicate_shares_no_entry(selections):
    cache, history = PartCache(), _history()
    _select(cache, "medicationAdministrations", history, _keep_drugs, "pat-42")
    as_someone_else = _select(cache, "medicationAdministrations", history, _keep_drugs, "someone-else")
    _select(cache, "medicationAdministrations", history, lambda part, raw: True, "pat-42")
    _select(cache, "medicationRequests", history, _keep_drugs, "pat-42")
    assert len(selections) == 4
    # For the other patient, pat-42's administration is the one left out.
    assert next(item for _, item in as_someone_else) == OTHER_PATIENT


@pytest.mark.parametrize("odd", [None, float("nan"), "\ud800"], ids=["null", "nan", "lone-surrogate"])
def test_content_without_an_exact_text_is_selected_every_time(selections, odd):
    cache, history = PartCache(), _history()
    history[0]["note"] = [{"text": odd}]
    for _ in range(2):
        _select(cache, "medicationAdministrations", history, _keep_drugs, "pat-42")
    assert len(selections) == 2


def test_content_written_alike_but_for_null_and_nan_is_never_taken_for_the_other(selections):
    cache, with_null, with_nan = PartCache(), _history(), _history()
    with_null[0]["note"] = [{"text": None}]
    with_nan[0]["note"] = [{"text": float("nan")}]
    for history in (with_null, with_nan, with_null):
        _select(cache, "medicationAdministrations", history, _keep_drugs, "pat-42")
    assert len(selections) == 3


def test_the_cache_is_bounded_by_the_bytes_it_holds(selections):
    one, two = _history(), _changed(_history(), "a value")
    size = len(assemble.jsonio.exact_text(_value("medicationAdministrations", one)))
    cache = PartCache(max_bytes=size + 10)
    for history in (one, two, one):
        _select(cache, "medicationAdministrations", history, _keep_drugs, "pat-42")
    assert len(selections) == 3  # `two` pushed `one` out
    tiny = PartCache(max_bytes=10)
    for _ in range(2):
        _select(tiny, "medicationAdministrations", one, _keep_drugs, "pat-42")
    assert len(selections) == 5  # too large to hold: selected each time, never an error


def test_an_answer_changed_by_its_caller_does_not_change_the_next():
    cache = PartCache()
    _select(cache, "medicationAdministrations", _history(), _keep_drugs, "pat-42").clear()
    assert len(_select(cache, "medicationAdministrations", _history(), _keep_drugs, "pat-42")) == 4


def test_with_the_parse_cache_the_models_are_the_same_objects_call_after_call():
    cache, parse = PartCache(), ParseCache(64).parse
    first = _select(cache, "medicationAdministrations", _history(), _keep_drugs, "pat-42", parse=parse)
    again = _select(cache, "medicationAdministrations", _history(), _keep_drugs, "pat-42", parse=parse)
    assert [id(item) for _, item in first] == [id(item) for _, item in again]


def _sent(value: Any, **style: Any) -> bytes:
    import json

    return json.dumps(value, **style).encode()


def test_a_text_as_sent_keys_the_part_nulls_included(selections):
    """The text a client sent decodes to its value and only an equal text does: it is the key as it is,
    a null in it included (a text written out from the value is exact only without one)."""
    history = _history()
    history[0]["note"] = [{"text": None}]
    value = _value("medicationAdministrations", history)
    cache, text = PartCache(), _sent(value)
    answers = [cache.read("medicationAdministrations", value, _keep_drugs, "pat-42", text=text)
               for _ in range(2)]
    assert len(selections) == 1
    expected = _shown(read_part("medicationAdministrations", value, _keep_drugs, "pat-42")[1])
    assert [_shown(parsed) for _, parsed, _ in answers] == [expected, expected]


def test_another_text_of_the_same_content_is_another_key_with_the_same_answer(selections):
    value = _value("medicationAdministrations", _history())
    cache = PartCache()
    spaced = cache.read("medicationAdministrations", value, _keep_drugs, "pat-42", text=_sent(value))
    compact = cache.read("medicationAdministrations", value, _keep_drugs, "pat-42",
                         text=_sent(value, separators=(",", ":")))
    assert len(selections) == 2
    assert _shown(spaced[1]) == _shown(compact[1])


def test_a_text_sent_written_as_the_cache_writes_it_is_the_same_entry(selections):
    value = _value("medicationAdministrations", _history())
    cache = PartCache()
    cache.read("medicationAdministrations", value, _keep_drugs, "pat-42")
    cache.read("medicationAdministrations", value, _keep_drugs, "pat-42",
               text=assemble.jsonio.exact_text(value))
    assert len(selections) == 1
