"""The trial-status card names what the record shows against the arm (patient-view, the monitoring rules)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.rules.scenario import call, care_plan, day_of, dex_order, research_subject
from tests.rules.test_exposure import given
from tests.spec import check_cds_response

SENTENCE = "**In the record:** "


def status_card(client, body):
    response = client.post("/cds-services/dex-free-patient-view", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())
    [card] = response.get_json()["cards"]
    assert card["extension"]["dexfree"]["rule"] == "trial-status"
    return card


def _record_lines(card):
    return [line for line in card["detail"].split("\n\n") if line.startswith(SENTENCE)]


@pytest.mark.parametrize("day", [1, 3, 28])
def test_arm_b_dexamethasone_given_in_cycle_3_is_named(client, day):
    card = status_card(client, call("patient-view", administrations=(given(day_of(3, day), "late"),)))
    on = day_of(3, day).isoformat()
    assert _record_lines(card) == [f"{SENTENCE}dexamethasone given {on}, cycle 3 day {day} — possible "
                                   "deviation, tell the study team."]
    assert "MedicationAdministration" not in card["detail"]


def test_arm_b_order_in_the_record_for_cycle_3_is_named(client):
    order = dex_order(day_of(3, 8), order_id="signed", status="active")
    [line] = _record_lines(status_card(client, call("patient-view", requests=(order,))))
    assert "dexamethasone ordered 2026-11-03, cycle 3 day 8 — possible deviation" in line


@pytest.mark.parametrize("record", ["none", "cycles 1-2 as planned", "local route in cycle 3", "not done"])
def test_nothing_is_said_without_a_deviation(client, record):
    administrations = {
        "none": (),
        "cycles 1-2 as planned": tuple(given(day_of(c, d), f"g{c}{d}") for c in (1, 2) for d in (1, 8, 15, 22)),
        "local route in cycle 3": (given(day_of(3, 2), "eye", route={"text": "ophthalmic"}),),
        "not done": (given(day_of(3, 2), "nd", status="not-done"),),
    }[record]
    assert _record_lines(status_card(client, call("patient-view", administrations=administrations))) == []


def test_arm_a_current_cycle_without_dexamethasone_by_its_last_day(client):
    arm_a = {"subjects": (research_subject("dexamethasone arm"),), "plans": (care_plan("icaria-arm-a"),)}
    # Today (2026-11-24) is cycle 4 day 1: the cycle is not over, nothing is said.
    assert _record_lines(status_card(client, call("patient-view", **arm_a))) == []
    # A plan 27 days earlier makes today cycle 4 day 28, its last day.
    late = {"subjects": (research_subject("dexamethasone arm", enrolled="2026-08-01"),),
            "plans": (care_plan("icaria-arm-a", start=day_of(1, 1) - timedelta(days=27)),)}
    [line] = _record_lines(status_card(client, call("patient-view", **late)))
    assert line.startswith(f"{SENTENCE}no dexamethasone given or ordered in cycle 4")
    assert "tell the study team" in line
