"""The regimen numbers the service uses are those of the artifacts, and those agree with the protocol summary."""

from __future__ import annotations

import json

import pytest

from cds_service.knowledge.model import load_knowledge
from tests.knowledge.conftest import SHIPPED

DAYS_URL = "http://hl7.org/fhir/StructureDefinition/timing-daysOfCycle"


def _raw_drug_actions(plan):
    """(cycle definition id, action id, days, [dose value]) read straight from the JSON, not by the loader."""
    rows = []
    for cycle_def in plan["action"][0]["action"]:
        for action in cycle_def["action"]:
            days = tuple(sorted(e["valueInteger"] for ext in action["extension"] if ext["url"] == DAYS_URL
                                for e in ext["extension"]))
            canonicals = [action.get("definitionCanonical")] if "definitionCanonical" in action else [
                a["definitionCanonical"] for a in action["action"]]
            doses = []
            for canonical in canonicals:
                ad_id = canonical.rsplit("/", 1)[1]
                ad = json.loads((SHIPPED / "activities" / f"ActivityDefinition-{ad_id}.json").read_text())
                doses.append(ad["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"])
            rows.append((cycle_def["id"], action["id"], days, doses))
    return rows


def test_service_numbers_equal_those_in_the_artifacts(knowledge):
    for regimen in knowledge.regimens:
        plan = json.loads((SHIPPED / "regimens" / f"PlanDefinition-{regimen.url.rsplit('/', 1)[1]}.json").read_text())
        loaded = [(b.action_id, d.action_id, d.days, [o.value for o in d.options])
                  for b in regimen.blocks for d in b.drugs]
        assert loaded == _raw_drug_actions(plan)
        lengths = {c["timingTiming"]["repeat"]["duration"] for c in plan["action"][0]["action"]}
        assert {b.length_days for b in regimen.blocks} == lengths


# The protocol summary (../shared/trial/NCT06561854.md), as a reviewer would check the artifacts against it.
@pytest.mark.parametrize("arm", ["A", "B"])
def test_icaria_matches_the_protocol_summary(knowledge, arm):
    regimen = knowledge.regimen("ICARIA", arm)
    c1, c2 = regimen.block(1), regimen.block(2)
    assert c1.length_days == c2.length_days == 28
    dex = c1.drug("dexamethasone")
    assert dex.days == (1, 8, 15, 22)
    assert dex.dose_for_age(74).describe() == "40 mg" and dex.dose_for_age(75).describe() == "20 mg"
    assert dex.dose_for_age(None) is None  # the dose depends on age: unknown age, unknown dose
    assert c1.drug("isatuximab").days == (1, 8, 15, 22) and c2.drug("isatuximab").days == (1, 15)
    assert c1.drug("isatuximab").options[0].describe() == "10 mg/kg"
    assert c1.drug("pomalidomide").days == tuple(range(1, 22))
    assert c1.drug("pomalidomide").options[0].describe() == "4 mg"


@pytest.mark.parametrize("arm", ["A", "B"])
def test_ikema_matches_the_protocol_summary(knowledge, arm):
    regimen = knowledge.regimen("IKEMA", arm)
    c1, c2 = regimen.block(1), regimen.block(2)
    dex = c1.drug("dexamethasone")
    assert dex.days == (1, 2, 8, 9, 15, 16, 22, 23)
    assert {dex.dose_for_age(age).describe() for age in (40, 74, 75, 90)} == {"20 mg"}
    assert c2.drug("isatuximab").days == (1, 15)
    assert [(d.days, d.options[0].describe()) for d in c1.drug_actions("carfilzomib")] == [
        ((1, 2), "20 mg/m2"), ((8, 9, 15, 16), "56 mg/m2")]
    assert [(d.days, d.options[0].describe()) for d in c2.drug_actions("carfilzomib")] == [
        ((1, 2, 8, 9, 15, 16), "56 mg/m2")]


def test_arm_b_stops_dexamethasone_from_cycle_3_and_arm_a_never(knowledge):
    for key in ("ICARIA", "IKEMA"):
        assert knowledge.regimen(key, "B").first_cycle_without("dexamethasone") == 3
        assert knowledge.regimen(key, "A").first_cycle_without("dexamethasone") is None
        assert knowledge.regimen(key, "B").gives("dexamethasone", 2)
        assert not knowledge.regimen(key, "B").gives("dexamethasone", 3)
        assert not knowledge.regimen(key, "B").gives("dexamethasone", 40)
        assert knowledge.regimen(key, "A").gives("dexamethasone", 40)


@pytest.mark.parametrize(("days", "expected"), [
    (-1, None), (0, (1, 1)), (27, (1, 28)), (28, (2, 1)), (55, (2, 28)), (56, (3, 1)), (57, (3, 2)),
    (28 * 12 + 3, (13, 4)),
])
def test_cycle_and_day_from_days_since_cycle_1_day_1(knowledge, days, expected):
    assert knowledge.regimen("ICARIA", "B").cycle_and_day(days) == expected
    if expected:
        assert knowledge.regimen("ICARIA", "B").cycle_start(expected[0]) + expected[1] - 1 == days


def test_regimen_text_agrees_with_the_structured_doses(knowledge):
    """What a pharmacist reads (textEquivalent) states the same dose and days as the structure the service uses."""
    for regimen in knowledge.regimens:
        plan = knowledge.artifacts.by_url[regimen.url]
        for cycle_def in plan["action"][0]["action"]:
            for action in cycle_def["action"]:
                drug = next(d for b in regimen.blocks for d in b.drugs if d.action_id == action["id"])
                for option in drug.options:
                    assert f"{option.value:g} mg" in action["textEquivalent"], action["id"]
                assert str(drug.days[0]) in action["textEquivalent"] and str(drug.days[-1]) in action["textEquivalent"]


def test_changing_an_artifact_changes_what_the_service_uses(edit_artifact):
    """The artifacts are the source: extend arm B's dexamethasone to cycle 3 and lower the 75+ dose."""
    def three_cycles_with_dex(plan):
        plan["action"][0]["action"][1]["timingTiming"]["repeat"]["count"] = 2
    edit_artifact("regimens/PlanDefinition-icaria-arm-b.json", three_cycles_with_dex)
    folder = edit_artifact("activities/ActivityDefinition-dexamethasone-20mg-75-and-over.json",
                           lambda ad: ad["dosage"][0]["doseAndRate"][0]["doseQuantity"].update(value=12))
    changed = load_knowledge(folder)
    assert changed.regimen("ICARIA", "B").first_cycle_without("dexamethasone") == 4
    assert changed.regimen("IKEMA", "B").first_cycle_without("dexamethasone") == 3
    assert changed.regimen("ICARIA", "A").block(1).drug("dexamethasone").dose_for_age(80).value == 12


def test_regimen_for_a_care_plan_canonical(knowledge):
    url = knowledge.regimen("IKEMA", "B").url
    assert knowledge.regimen_for_canonical(url).key == "IKEMA"
    assert knowledge.regimen_for_canonical(url + "|1.0.0").arm == "B"
    assert knowledge.regimen_for_canonical("PlanDefinition/ikema-arm-b").key == "IKEMA"
    assert knowledge.regimen_for_canonical("https://elsewhere.example/PlanDefinition/KDN5") is None
    assert knowledge.regimen_for_canonical(None) is None


def test_the_block_of_every_cycle_is_the_first_that_covers_it(knowledge):
    # Looked up from a table: the same answer as searching the blocks, inside and past the listed cycles.
    for regimen in knowledge.regimens:
        for cycle in range(-1, 40):
            assert regimen.block(cycle) == next((b for b in regimen.blocks if b.covers(cycle)), None)
