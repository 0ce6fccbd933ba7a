"""What each demo patient shows, through real hook calls (the README's table, asserted).

The calls are made as the preview page makes them: prefetch rendered from the discovery templates and
read from the demo FHIR endpoint. They run on several days (the population is dated relative to the
day it is served), so the table holds whatever day a newcomer runs `make run`.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.demo.support import DemoClient, rules

DAYS = (date(2026, 11, 24), date(2027, 3, 1), date(2028, 2, 29))
WARNING = [("warning", "dex-after-cycle-2")]
DOSE_INFO = [("info", "dex-dose-mismatch")]
STATUS = [("info", "trial-status")]

# patient key → (cycle, day today, cards for 40 mg by mouth today, cards for the regimen's own dose today)
TRIAL = {
    "b-icaria-c1": (1, 8, [], []),
    "b-icaria-c2": (2, 28, DOSE_INFO, DOSE_INFO),  # day 28 is no dexamethasone day
    "b-icaria-c3": (3, 1, WARNING, WARNING),
    "b-icaria-c4": (4, 8, WARNING, WARNING),
    "b-ikema-c1": (1, 8, DOSE_INFO, []),  # IKEMA gives 20 mg
    "b-ikema-c2": (2, 28, DOSE_INFO, DOSE_INFO),
    "b-ikema-c3": (3, 1, WARNING, WARNING),
    "b-ikema-c4": (4, 2, WARNING, WARNING),
    "a-icaria-c1": (1, 8, [], []),
    "a-icaria-c2": (2, 28, DOSE_INFO, DOSE_INFO),
    "a-icaria-c3": (3, 1, [], []),
    "a-icaria-c4": (4, 8, [], []),
    "a-ikema-c1": (1, 8, DOSE_INFO, []),
    "a-ikema-c2": (2, 28, DOSE_INFO, DOSE_INFO),
    "a-ikema-c3": (3, 1, DOSE_INFO, []),
    "a-ikema-c4": (4, 2, DOSE_INFO, []),
}
REGIMEN_DOSE = {"icaria": 40, "ikema": 20}


@pytest.fixture(scope="module", params=DAYS, ids=str)
def demo(request, knowledge) -> DemoClient:
    return DemoClient(knowledge, request.param)


def pid(key: str) -> str:
    return f"dexfree-demo-{key}"


def test_the_picker_lists_every_patient_of_the_table(demo):
    listed = {p["id"] for p in demo.client.get("/demo/patients").get_json()["patients"]}
    expected = {pid(k) for k in TRIAL} | {pid(k) for k in ("a-icaria-aged", "b-cycle-unknown", "candidate",
                                                            "not-eligible", "outside-study")}
    assert listed == expected


@pytest.mark.parametrize("key", sorted(TRIAL))
def test_trial_patient_status_and_orders(demo, key):
    cycle, day, with_40_mg, with_regimen_dose = TRIAL[key]
    arm = key[0].upper()
    status = demo.call("patient-view", pid(key))
    assert rules(status) == STATUS
    facts = status[0]["extension"]["dexfree"]
    assert (facts["arm"], facts["regimen"], facts["cycle"], facts["cycleDay"]) == (
        arm, key.split("-")[1].upper(), cycle, day)

    assert rules(demo.call("order-sign", pid(key), (demo.order(pid(key), 40),))) == with_40_mg
    dose = REGIMEN_DOSE[key.split("-")[1]]
    signed = demo.call("order-sign", pid(key), (demo.order(pid(key), dose),))
    assert rules(signed) == with_regimen_dose
    selected = demo.call("order-select", pid(key), (demo.order(pid(key), dose),))
    assert rules(selected) == with_regimen_dose
    if with_regimen_dose == WARNING:
        card = signed[0]
        assert [a["type"] for a in card["suggestions"][0]["actions"]] == ["delete"]
        assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/preview-order-1"
        assert len(card["overrideReasons"]) == 3


@pytest.mark.parametrize("key", ["b-icaria-c2", "b-ikema-c2"])
def test_last_day_of_cycle_2_an_order_running_into_cycle_3_warns_with_an_update(demo, key):
    dose = REGIMEN_DOSE[key.split("-")[1]]
    cards = demo.call("order-sign", pid(key), (demo.order(pid(key), dose, doses=2),))
    assert ("warning", "dex-extends-past-cycle-2") in rules(cards)
    warning = next(c for c in cards if c["indicator"] == "warning")
    action = warning["suggestions"][0]["actions"][0]
    assert action["type"] == "update" and action["resource"]["id"] == "preview-order-1"
    # The same order the next day is in cycle 3: the plain arm B warning.
    tomorrow = demo.order(pid(key), dose, start=demo.today + timedelta(days=1))
    assert rules(demo.call("order-sign", pid(key), (tomorrow,))) == WARNING


def test_arm_a_patient_aged_75_or_more_gets_the_reduced_dose(demo):
    key = pid("a-icaria-aged")
    assert rules(demo.call("patient-view", key)) == STATUS
    mismatch = demo.call("order-sign", key, (demo.order(key, 40),))
    assert rules(mismatch) == DOSE_INFO
    assert "20 mg" in mismatch[0]["summary"]
    assert rules(demo.call("order-sign", key, (demo.order(key, 20),))) == []


def test_patient_whose_cycle_cannot_be_verified(demo):
    key = pid("b-cycle-unknown")
    cards = demo.call("order-sign", key, (demo.order(key, 40),))
    assert rules(cards) == [("info", "cannot-verify")]
    status = demo.call("patient-view", key)
    assert rules(status) == STATUS and status[0]["extension"]["dexfree"].get("cycle") is None


def test_eligibility_candidate(demo):
    key = pid("candidate")
    cards = demo.call("patient-view", key)
    assert rules(cards) == [("info", "eligibility")]
    verdict = cards[0]["extension"]["dexfree"]["eligibility"]
    assert verdict["overall"] == "needs-review"
    assert not [c for c in verdict["criteria"] if c["status"] == "not-met"]
    assert demo.call("order-sign", key, (demo.order(key, 40),)) == []


def test_decisively_not_eligible_shows_nothing_unless_asked(demo, knowledge):
    key = pid("not-eligible")
    assert demo.call("patient-view", key) == []
    assert demo.call("order-sign", key, (demo.order(key, 40),)) == []
    shown = DemoClient(knowledge, demo.today, show_not_eligible=True).call("patient-view", key)
    assert rules(shown) == [("info", "eligibility")]
    verdict = shown[0]["extension"]["dexfree"]["eligibility"]
    assert verdict["overall"] == "not-eligible"
    assert [c["id"] for c in verdict["criteria"] if c["status"] == "not-met"] == ["E13"]


def test_myeloma_patient_not_in_the_study(demo):
    key = pid("outside-study")
    for hook in ("order-select", "order-sign"):
        assert demo.call(hook, key, (demo.order(key, 40),)) == []
    cards = demo.call("patient-view", key)
    assert rules(cards) == [("info", "eligibility")]
    assert cards[0]["extension"]["dexfree"]["eligibility"]["overall"] == "needs-review"
