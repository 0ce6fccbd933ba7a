"""R4B parsing: lenient repairs, R5-shaped ResearchSubject elements, and the parse cache."""

from __future__ import annotations

import copy

import pytest

from cds_service.fhir.parse import ParseCache, parse_resource
from tests.rules.scenario import dex_order, research_subject


def test_repeated_content_is_validated_once(monkeypatch):
    cache = ParseCache(16)
    calls = []
    import cds_service.fhir.parse as parse_module

    real = parse_module.parse_resource
    monkeypatch.setattr(parse_module, "parse_resource", lambda raw: calls.append(1) or real(raw))
    first = cache.parse(dex_order())
    second = cache.parse(dex_order())  # equal content, another dict
    assert first is second and len(calls) == 1
    other = cache.parse(dex_order(order_id="dex-2"))
    assert other.id == "dex-2" and len(calls) == 2


def test_content_that_differs_only_in_its_json_types_shares_no_entry():
    cache = ParseCache(16)
    integer, decimal = cache.parse(dex_order(dose=40)), cache.parse(dex_order(dose=40.0))
    assert integer is not decimal
    text = dex_order()
    text["dosageInstruction"][0]["text"] = "1"
    number = dex_order()
    number["dosageInstruction"][0]["text"] = "1 "
    assert cache.parse(text) is not cache.parse(number)
    assert cache.parse(text) is cache.parse(copy.deepcopy(text))


@pytest.mark.parametrize("how", ["short", "long", "with a null", "with NaN"])
def test_every_kind_of_key_validates_once_and_tells_content_apart(monkeypatch, how):
    import cds_service.fhir.parse as parse_module

    calls = []
    real = parse_module.parse_resource
    monkeypatch.setattr(parse_module, "parse_resource", lambda raw: calls.append(1) or real(raw))

    def order(text: str):
        built = dex_order()
        built["note"] = [{"text": text * (300 if how == "long" else 1)}]
        if how == "with a null":
            built["reasonCode"] = None
        elif how == "with NaN":
            built["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = float("nan")
        return built

    cache = ParseCache(16)
    outcomes = [_outcome(cache, order(text)) for text in ("late", "late", "early")]
    assert len(calls) == 2
    assert outcomes[0] == outcomes[1] and (outcomes[0] is outcomes[1] or isinstance(outcomes[0], str))
    assert outcomes[2] != outcomes[0]


def _outcome(cache: ParseCache, raw):
    try:
        return cache.parse(raw)
    except ValueError as exc:
        return f"refused: {exc} ({raw['note'][0]['text'][:5]})"


def test_failures_are_remembered_and_raised_again(monkeypatch):
    cache = ParseCache(16)
    broken = {"resourceType": "MedicationRequest", "status": 12}
    with pytest.raises(ValueError, match="does not validate") as first:
        cache.parse(broken)
    with pytest.raises(ValueError, match="does not validate") as again:
        cache.parse(dict(broken))
    assert str(first.value) == str(again.value)


def test_the_cache_is_bounded():
    cache = ParseCache(2)
    for i in range(5):
        cache.parse(dex_order(order_id=f"o{i}"))
    assert len(cache._entries) == 2


def test_non_dict_input_is_refused_like_parse_resource():
    with pytest.raises(ValueError, match="not a FHIR resource"):
        ParseCache(4).parse(["not", "a", "resource"])


def test_r5_research_subject_elements_are_read_as_r4():
    raw = research_subject(None, status="active", subject_id="r5")
    raw["actualComparisonGroup"] = "arm-b"
    raw["subject"] = raw.pop("individual")
    raw["progress"] = [{"subjectState": {"coding": [{"code": "on-study"}]}}]
    parsed = parse_resource(raw)
    assert (parsed.actualArm, parsed.individual.reference, parsed.status) == ("arm-b", "Patient/pat-42", "on-study")


def test_sandbox_single_objects_where_r4_wants_arrays_are_repaired():
    raw = dex_order()
    raw["category"] = {"text": "outpatient"}
    raw["reasonCode"] = {"text": "myeloma"}
    parsed = parse_resource(raw)
    assert parsed.category[0].text == "outpatient" and parsed.reasonCode[0].text == "myeloma"
