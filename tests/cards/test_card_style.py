"""Every card of every rule kind, on the service's own scenario tables, against the card style guide.

The cards are collected once (tests/cards/collect.py: order shapes, order hooks, cycle clock end-to-end rows,
golden calls, the trial-status card of each of their records, the demo population through the hooks, the
eligibility criterion cases and the synthetic population through patient-view). Each is checked: summary
under 140 characters, detail within its kind's limit, and neither naming a FHIR reference, an element name,
a code system, a raw code, a UCUM annotation or nested parentheses.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from cds_service.cards.common import CODE
from tests.cards.collect import Found, every_card
from tests.rules.scenario import call

DETAIL_LIMITS = {"dex-after-cycle-2": 500, "dex-extends-past-cycle-2": 500, "dex-dose-mismatch": 500,
                 "cannot-verify": 500, "trial-status": 500, "eligibility": 1200}
REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+")
ELEMENTS = ("authoredOn", "period.start", "actualArm", "assignedArm", "boundsPeriod", "boundsDuration",
            "dosageInstruction", "doseAndRate", "doseQuantity", "dispenseRequest", "effectiveDateTime",
            "instantiatesCanonical", "medicationCodeableConcept", "medicationReference", "valueCodeableConcept",
            "clinicalStatus", "verificationStatus", "doNotPerform", "birthDate", "expectedSupplyDuration")
# A camelCase or PascalCase compound (ResearchSubject, CarePlan, actualComparisonGroup): a FHIR name.
COMPOUND = re.compile(r"\b(?:[a-z]+[A-Z]|[A-Z][a-z]+[A-Z])[A-Za-z]*\b")
UCUM_ANNOTATION = re.compile(r"\{[^}]*\}")


@pytest.fixture(scope="module")
def found(knowledge) -> list[Found]:
    from dataclasses import replace as _replace

    from cds_service.app import create_app
    from cds_service.config import Config
    from cds_service.runtime import Runtime
    from tests.conftest import FIXED_NOW

    config = Config()
    client = create_app(runtime=Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW)).test_client()
    return every_card(client, _replace(config), knowledge)


def nested(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "("
        if depth > 1:
            return True
        depth -= char == ")"
    return False


def problems(text: str) -> list[str]:
    """What a clinician must never read in a summary or a detail."""
    found = []
    found += [f"reference {m}" for m in REFERENCE.findall(text)]
    found += [f"element {e}" for e in ELEMENTS if e in text]
    found += [f"FHIR name {m}" for m in COMPOUND.findall(text)]
    found += [f"URI in {m}" for m in re.findall(r"\S*https?://\S*", text)]
    found += [f"code {m.group(0)}" for m in CODE.finditer(text)]
    found += [f"UCUM annotation {m}" for m in UCUM_ANNOTATION.findall(text)]
    found += ["nested parentheses"] if nested(text) else []
    return found


def rule(card: dict[str, Any]) -> str:
    return card["extension"]["dexfree"]["rule"]


def test_the_tables_produce_every_card_kind(found):
    kinds = Counter(rule(card) for _, card in found)
    assert set(kinds) == set(DETAIL_LIMITS), kinds
    assert all(count >= 3 for count in kinds.values()), kinds


def test_summaries_are_short_and_clean(found):
    bad = [(name, card["summary"], problems(card["summary"])) for name, card in found
           if len(card["summary"]) >= 140 or problems(card["summary"])]
    assert not bad, bad[:5]


def test_details_fit_their_limit_and_are_clean(found):
    bad = [(name, len(card["detail"]), problems(card["detail"]), card["detail"]) for name, card in found
           if len(card.get("detail", "")) > DETAIL_LIMITS[rule(card)] or problems(card.get("detail", ""))]
    assert not bad, bad[:3]


def test_suggestion_labels_start_with_a_verb_and_are_clean(found):
    verbs = ("Remove", "End", "Change")
    labels = {s["label"] for _, card in found for s in card.get("suggestions", [])}
    assert labels
    assert all(label.startswith(verbs) and not problems(label) for label in labels), labels


def test_the_references_stay_in_the_extension(found):
    for name, card in found:
        dexfree = card["extension"]["dexfree"]
        assert {"rule", "study", "evidence"} <= set(dexfree), name
        if rule(card) != "eligibility":
            assert all(REFERENCE.fullmatch(ref) for ref in dexfree["evidence"]), name


def test_the_premedication_sentence_comes_first_on_infusion_days(found):
    # Cycle 3 day 1 and cycle 4 day 1 are ICARIA isatuximab days; day 2 is not.
    warnings = [(name, card) for name, card in found if rule(card) == "dex-after-cycle-2"]
    infusion = [card for name, card in warnings if card["detail"].startswith("**Isatuximab infusion day")]
    others = [card for name, card in warnings if not card["detail"].startswith("**Isatuximab infusion day")]
    assert infusion and others
    assert all("premedication" not in card["detail"] for card in others)
    assert all(card["extension"]["dexfree"]["cycleDay"] in (1, 8, 15, 22) for card in infusion)


def test_every_dose_card_gives_the_cycle_and_an_update_with_the_regimens_dose(found):
    doses = [(name, card) for name, card in found if rule(card) == "dex-dose-mismatch"]
    assert doses
    for name, card in doses:
        dexfree = card["extension"]["dexfree"]
        assert f"cycle {dexfree['cycle']} day {dexfree['cycleDay']}" in card["detail"], name
        assert dexfree["expectedDose"] in card["detail"], name
        if "dose" in card["summary"].split(":")[0]:
            [offer] = card["suggestions"]
            assert offer["label"] == f"Change the dose to {dexfree['expectedDose']}"
            [update] = offer["actions"]
            quantities = {json.dumps(r["doseQuantity"], sort_keys=True) for d in update["resource"]["dosageInstruction"]
                          for r in d["doseAndRate"]}
            value, unit = dexfree["expectedDose"].split()
            assert quantities == {json.dumps({"code": unit, "system": "http://unitsofmeasure.org", "unit": unit,
                                              "value": float(value)}, sort_keys=True)}, name


def test_no_age_is_said_where_the_regimens_dose_does_not_depend_on_it(found):
    ikema = [card for _, card in found if rule(card) == "dex-dose-mismatch"
             and card["extension"]["dexfree"].get("regimen") == "IKEMA"]
    assert ikema and not any(re.search(r"\bage\b|\b75\b", c["summary"] + c["detail"]) for c in ikema)


def test_could_not_verify_says_what_to_do_first(found):
    cards = [card for _, card in found if rule(card) == "cannot-verify"]
    assert cards and all(card["detail"].startswith("**Check ") for card in cards)
    assert all(card["summary"].startswith("Could not check ") for card in cards)


def test_eligibility_names_criteria_and_counts_the_rest(found):
    cards = [card for _, card in found if rule(card) == "eligibility"]
    for card in cards:
        detail = card["detail"]
        assert not re.search(r"\b[IE]\d{1,2}\b", detail), detail  # names and numbers, never bare ids
        assert re.search(r"Fine on \d+ of 23 criteria", detail)
        assert not re.search(r"\b\d{3,} days\b", detail)
        if card["extension"]["dexfree"]["eligibility"]["overall"] == "not-eligible" and "**Excluded by:**" in detail:
            assert detail.index("**Excluded by:**") < detail.index("Fine on")
            assert detail.find("**To check:**") in (-1, *range(detail.index("**Excluded by:**"), len(detail)))


def test_the_dose_update_sent_back_is_quiet(client):
    """The suggestion's order, signed as it is, gets no dose card."""
    from tests.rules.scenario import care_plan, day_of, dex_order

    body = call(orders=(dex_order(day_of(1, 8), dose=40),), plans=(care_plan("ikema-arm-b"),))
    [card] = client.post("/cds-services/dex-free-order-sign", json=body).get_json()["cards"]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    again = call(orders=(resource,), plans=(care_plan("ikema-arm-b"),))
    assert client.post("/cds-services/dex-free-order-sign", json=again).get_json()["cards"] == []


def test_the_dose_update_drops_a_dosage_text_that_writes_the_old_dose(client):
    from tests.rules.scenario import care_plan, day_of, dex_order

    order = dex_order(day_of(1, 8), dose=40)
    order["dosageInstruction"][0]["text"] = "40 mg by mouth in the morning"
    body = call(orders=(order,), plans=(care_plan("ikema-arm-b"),))
    [card] = client.post("/cds-services/dex-free-order-sign", json=body).get_json()["cards"]
    [dosage] = card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"]
    assert "text" not in dosage and dosage["doseAndRate"][0]["doseQuantity"]["value"] == 20
