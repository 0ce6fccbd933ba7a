"""The demo population: valid FHIR R4, stable ids, codes from the shipped value sets, relative dates."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_service.demo.bundle import transaction_bundle, transaction_bundles
from cds_service.demo.codes import concepts, dexamethasone_products, routes
from cds_service.demo.population import PREFIX, born, build_population

DAYS = (date(2026, 11, 24), date(2027, 1, 1), date(2028, 2, 29), date(2030, 7, 15))


@pytest.fixture(scope="module", params=DAYS, ids=str)
def population(request, knowledge):
    return build_population(knowledge, request.param)


def test_every_resource_and_the_bundle_are_valid_fhir_r4(population):
    bundle = transaction_bundle(population)
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_entries_are_puts_with_stable_prefixed_ids(population, knowledge):
    bundle = transaction_bundle(population)
    urls = [e["request"]["url"] for e in bundle["entry"]]
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
    assert urls == [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    assert all(e["resource"]["id"].startswith(PREFIX) for e in bundle["entry"])
    assert not set(urls) & set(knowledge.artifacts.by_ref)  # never overwrites a published artifact
    # Another day: the same ids, so reloading replaces instead of adding.
    other = transaction_bundle(build_population(knowledge, date(2031, 5, 5)))
    assert [e["request"]["url"] for e in other["entry"]] == urls


def test_every_reference_points_inside_the_population(population):
    ids = {f"{r['resourceType']}/{r['id']}" for r in population.resources()}

    def references(value):
        if isinstance(value, dict):
            if isinstance(value.get("reference"), str):
                yield value["reference"]
            for child in value.values():
                yield from references(child)
        elif isinstance(value, list):
            for child in value:
                yield from references(child)

    assert set(references(list(population.resources()))) <= ids


def test_codes_are_the_value_sets_own(population, knowledge):
    """Each coding the demo carries is one a shipped ValueSet holds (nothing retyped)."""
    shipped = {(c["system"], c["code"]) for vs in knowledge.artifacts.of_type("ValueSet")
               for c in concepts(knowledge, vs["id"])}
    for resource in population.resources():
        for key in ("code", "medicationCodeableConcept", "valueCodeableConcept"):
            for coding in (resource.get(key) or {}).get("coding", []):
                assert (coding["system"], coding["code"]) in shipped, (resource["id"], coding)
    regimens = {r.url for r in knowledge.regimens}
    plans = [r for r in population.resources() if r["resourceType"] == "CarePlan"]
    assert plans and all(p["instantiatesCanonical"][0] in regimens for p in plans)
    assert population.study["identifier"][0]["value"] == knowledge.study.nct_id


def test_order_form_choices_come_from_the_value_sets(knowledge):
    products = dexamethasone_products(knowledge)
    assert products and all(knowledge.codes("dexamethasone").has_code(p["system"], p["code"]) for p in products)
    coded = routes(knowledge)
    systemic = [r for r in coded if knowledge.codes("routes-systemic").has_code(r["system"], r["code"])]
    local = [r for r in coded if knowledge.codes("routes-local").has_code(r["system"], r["code"])]
    assert coded[0] in systemic and "oral" in coded[0]["display"].lower()
    assert systemic and local and len(systemic) + len(local) == len(coded)


def test_dates_are_relative_to_the_day_served(knowledge):
    first, later = (build_population(knowledge, d) for d in (date(2026, 11, 24), date(2027, 6, 3)))
    shift = (date(2027, 6, 3) - date(2026, 11, 24)).days
    for a, b in zip(first.resources(), later.resources(), strict=True):
        if a["resourceType"] == "CarePlan":
            start_a, start_b = (date.fromisoformat(r["period"]["start"]) for r in (a, b))
            assert (start_b - start_a).days == shift


@pytest.mark.parametrize("today", [date(2026, 11, 24), date(2027, 3, 1), date(2028, 2, 29), date(2028, 3, 1)])
@pytest.mark.parametrize("age", [18, 64, 75, 78])
def test_born_makes_the_age_exact(today, age):
    birth = date.fromisoformat(born(today, age))
    years = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    assert years == age


@pytest.mark.parametrize("cap", [7, 10, 49, 50])
def test_split_bundles_keep_each_patient_whole(population, cap):
    parts = transaction_bundles(population, cap)
    assert all(len(p["entry"]) <= cap for p in parts)
    assert [e for p in parts for e in p["entry"]] == transaction_bundle(population)["entry"]
    where = {}
    for number, part in enumerate(parts):
        for entry in part["entry"]:
            resource = entry["resource"]
            owner = resource.get("subject") or resource.get("individual")
            patient = owner["reference"] if owner else f"Patient/{resource['id']}"
            assert where.setdefault(patient, number) == number, patient
    assert parts[0]["entry"][0]["resource"]["id"] == population.study["id"]


def test_split_refuses_a_cap_smaller_than_a_patient(population):
    with pytest.raises(ValueError, match="max-entries"):
        transaction_bundles(population, 2)


def test_bundle_is_plain_json(population):
    assert json.loads(json.dumps(transaction_bundle(population)))["type"] == "transaction"


def test_cycle_days_follow_the_regimen_artifacts_not_fixed_numbers(knowledge, tmp_path):
    """With 21-day cycles in the ICARIA arm B PlanDefinition, the demo moves with it."""
    import shutil

    from cds_service.config import Config
    from cds_service.knowledge.model import load_knowledge
    from tests.demo.support import DemoClient

    folder = tmp_path / "plan_definitions"
    shutil.copytree(Config().plan_definitions, folder)
    path = folder / "regimens" / "PlanDefinition-icaria-arm-b.json"
    plan = json.loads(path.read_text())
    for cycle_definition in plan["action"][0]["action"]:
        cycle_definition["timingTiming"]["repeat"]["duration"] = 21
    path.write_text(json.dumps(plan))
    changed = load_knowledge(folder)
    demo = DemoClient(changed, date(2026, 11, 24))
    for key, expected in (("b-icaria-c2", (2, 21)), ("b-icaria-c3", (3, 1)), ("a-icaria-c2", (2, 28))):
        facts = demo.call("patient-view", f"dexfree-demo-{key}")[0]["extension"]["dexfree"]
        assert (facts["cycle"], facts["cycleDay"]) == expected, key
