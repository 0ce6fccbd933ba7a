"""What bulk screening keeps, for which patient, and the raw-line shortcut (no resource the criteria read lost)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.screen.intern import Interner
from cds_service.screen.relevance import ELEMENTS, keep, line_filter, patient_key, project, reference_key
from tests.fixtures.eligibility.builders import (
    LOINC,
    SNOMED,
    condition,
    ecog,
    observation,
    order,
    patient,
    research_subject,
)
from tests.fixtures.eligibility.population import population


@pytest.mark.parametrize(("reference", "key"), [
    ("Patient/123", "Patient/123"),
    ("https://ehr.example.org/fhir/Patient/123", "Patient/123"),
    ("Patient/123/_history/4", "Patient/123"),
    ("urn:uuid:6d0e4b4e-0000-4000-8000-000000000001", None),
    ("#contained", None),
])
def test_reference_key(reference, key):
    assert reference_key(reference) == key


def test_patient_key_from_each_shape():
    assert patient_key(patient("p9"), {}) == "p9"
    assert patient_key(condition("C90.02", rid="c", pid="p9"), {}) == "p9"
    assert patient_key(research_subject("ResearchStudy/s", rid="rs", pid="p9"), {}) == "p9"  # individual
    allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p9"}}
    assert patient_key(allergy, {}) == "p9"
    uuid_ref = {"resourceType": "Condition", "subject": {"reference": "urn:uuid:1"}}
    assert patient_key(uuid_ref, {"urn:uuid:1": "Patient/p9"}) == "p9"
    group = {"resourceType": "Condition", "subject": {"reference": "Group/g1"}}
    assert patient_key(group, {}) is None


def test_keep(knowledge):
    assert keep(patient(), knowledge) and keep(research_subject("ResearchStudy/s", rid="rs"), knowledge)
    assert keep(condition("C90.02", rid="mm"), knowledge) and not keep(condition("I10", rid="htn"), knowledge)
    assert keep(ecog(1), knowledge) and not keep(observation("718-7", rid="hb"), knowledge)
    assert keep(order("lenalidomide", rid="r", start="2024-01-01"), knowledge)
    assert not keep(order(None, text="acyclovir 400 mg", rid="a", start="2024-01-01"), knowledge)
    assert keep(order(None, rid="m", start="2024-01-01", medication_reference="Medication/x"), knowledge)
    assert not keep({"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}}, knowledge)


def test_projection_keeps_what_r4_requires(knowledge):
    for synthetic in population(len(ELEMENTS) * 3, seed=11):
        for raw in synthetic.resources:
            if raw["resourceType"] in ELEMENTS and keep(raw, knowledge) and raw.get("valueInteger") != "one":
                parse_resource(project(raw))  # raises if a required element were cut


def test_line_filter_loses_no_resource_the_criteria_read(knowledge):
    lines = [ecog(2), observation("89247-1", rid="x", value=(LOINC, "LA9623-5")),
             observation("97509-4", rid="r", value_text="PR"), observation("63895-7", rid="b"),
             observation("718-7", rid="hb"), observation("8867-4", rid="hr")]
    accept = line_filter("Observation", knowledge)
    for raw in lines:
        text = json.dumps(raw).encode()
        assert accept(text) or not keep(raw, knowledge), raw["code"]
        assert accept(text) == keep(raw, knowledge)
    escaped = json.dumps({**observation("718-7", rid="hb"), "note": [{"text": "é"}]}).encode()
    assert accept(escaped)  # JSON escapes are always decoded
    assert line_filter("Encounter", knowledge)(b"{}") is False
    assert line_filter("Condition", knowledge) is None  # a regex value set: every line is decoded


def test_interned_parsing_gives_the_same_resources():
    interner = Interner(limit=4)
    resources = [condition("C90.02", rid=f"c{i}", onset=f"2020-01-0{i}") for i in range(1, 8)]
    resources.append(observation("89247-1", rid="o", value=(SNOMED, "1")))
    for raw in resources:
        assert interner.parse(raw) == parse_resource(raw)
    with pytest.raises(ValueError, match="does not validate"):
        interner.parse({**resources[0], "onsetDateTime": "yesterday"})


def test_dosage_is_cut_to_route_and_timing_bounds():
    shared = Path(__file__).resolve().parents[3] / "shared" / "fhir-examples"
    for name in ("uscore-MedicationRequest-contained-oral-axid.json", "r4core-MedicationRequest-medrx0309.json",
                 "epic-MedicationRequest-drospirenone-ethinyl-estradiol.json"):
        raw = json.loads((shared / name).read_text())
        cut = project(raw)
        bounds = [d["timing"]["repeat"]["boundsPeriod"] for d in raw.get("dosageInstruction", [])
                  if "boundsPeriod" in d.get("timing", {}).get("repeat", {})]
        assert [d["timing"]["repeat"]["boundsPeriod"] for d in cut.get("dosageInstruction", [])
                if "timing" in d] == bounds
        assert parse_resource(cut).get_resource_type() == "MedicationRequest"
