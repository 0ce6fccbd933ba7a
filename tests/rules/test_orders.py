"""Reading a MedicationRequest: route, first and last day, dose and days — on built orders and real examples."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.orders import order_facts
from tests.conftest import SHARED
from tests.rules.scenario import dex_order

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 24)


def facts(raw, knowledge, record=None):
    order = parse_resource(raw)
    record = record or PatientRecord(patient_id="pat-42")
    if order.id:
        record.referenced[f"MedicationRequest/{order.id}"] = order
    return order_facts(order, record, knowledge, TODAY, PARIS)


def test_a_one_off_oral_order(knowledge):
    found = facts(dex_order(date(2026, 11, 30)), knowledge)
    assert (found.route, found.start, found.end, found.dose_mg) == ("systemic", date(2026, 11, 30),
                                                                   date(2026, 11, 30), 40)
    assert found.days == (date(2026, 11, 30),) and not found.open_ended
    assert "coded" in found.route_how


@pytest.mark.parametrize(("dose", "unit", "mg"), [(40, "mg", 40), (0.04, "g", 40), (40000, "ug", 40)])
def test_mass_units_are_converted(knowledge, dose, unit, mg):
    assert facts(dex_order(dose=dose, unit=unit), knowledge).dose_mg == pytest.approx(mg)


@pytest.mark.parametrize(("change", "problem"), [
    ({"dose": None}, "no structured dose"),
    ({"dose": 2, "unit": "mL"}, "not a mass"),
    ({"dose": 10, "unit": "tablet"}, "strength"),
])
def test_unreadable_doses_say_why(knowledge, change, problem):
    found = facts(dex_order(**change), knowledge)
    assert found.dose_mg is None and problem in found.dose_problem


def test_weekly_for_four_weeks(knowledge):
    found = facts(dex_order(date(2026, 11, 2), days=22, frequency=(1, 1, "wk")), knowledge)
    assert found.days == (date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23))
    assert found.end == date(2026, 11, 23)


def test_count_gives_the_last_day(knowledge):
    raw = dex_order(date(2026, 11, 2), days=None)
    raw["dosageInstruction"][0]["timing"]["repeat"]["count"] = 4
    found = facts(raw, knowledge)
    assert found.end == date(2026, 11, 5) and not found.open_ended
    assert "number of doses" in found.end_how


def test_repeating_order_with_no_end_is_open_ended(knowledge):
    found = facts(dex_order(date(2026, 11, 2), days=None), knowledge)
    assert found.open_ended and found.end is None and found.days is None


def test_days_of_week(knowledge):
    raw = dex_order(date(2026, 11, 2), days=14, frequency=None)  # Monday 2 November
    raw["dosageInstruction"][0]["timing"]["repeat"]["dayOfWeek"] = ["mon", "tue"]
    assert facts(raw, knowledge).days == (date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 9),
                                          date(2026, 11, 10))


def test_bounds_duration(knowledge):
    raw = dex_order(days=None, authoredOn="2026-11-02")
    repeat = raw["dosageInstruction"][0]["timing"]["repeat"]
    del repeat["boundsPeriod"]
    repeat["boundsDuration"] = {"value": 2, "unit": "wk", "code": "wk"}
    found = facts(raw, knowledge)
    assert (found.start, found.end) == (date(2026, 11, 2), date(2026, 11, 15))


def test_start_falls_back_to_authored_on_then_today(knowledge):
    raw = dex_order()
    del raw["dosageInstruction"][0]["timing"]
    raw["authoredOn"] = "2026-11-20T23:30:00Z"  # 00:30 on the 21st in Paris
    assert facts(raw, knowledge).start == date(2026, 11, 21)
    del raw["authoredOn"]
    found = facts(raw, knowledge)
    assert found.start == TODAY and "today" in found.start_how


def test_instant_near_midnight_is_the_patients_day(knowledge):
    raw = dex_order()
    raw["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-10-26T23:15:00Z"}
    assert facts(raw, knowledge).start == date(2026, 10, 27)  # cycle 3 day 1 in Paris, not cycle 2 day 28


@pytest.mark.parametrize(("route", "expected"), [
    ({"text": "eye"}, "local"), ({"text": "per os"}, "systemic"), ({"text": "IV"}, "systemic"),
    ({"coding": [{"system": "urn:oid:2.16.840.1.113883.6.96", "code": "10547007"}]}, "local"),
    ({"text": "something else"}, "systemic"),
])
def test_route(knowledge, route, expected):
    raw = dex_order(route=None)
    raw["dosageInstruction"][0]["route"] = route
    assert facts(raw, knowledge).route == expected


def test_product_words_decide_when_no_route(knowledge):
    raw = dex_order(route=None, medication={"medicationCodeableConcept": {"text": "Dexamethasone 1 mg/mL collyre"}})
    assert facts(raw, knowledge).route == "local"


def test_systemic_product_code_is_systemic_without_route(knowledge):
    raw = dex_order(route=None, medication={"medicationCodeableConcept": {"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197582"}]}})
    found = facts(raw, knowledge)
    assert found.route == "systemic" and "product code" in found.route_how


def test_refills_extend_the_last_day(knowledge):
    raw = dex_order(date(2026, 11, 2), frequency=None)
    raw["dispenseRequest"] = {"numberOfRepeatsAllowed": 1,
                              "expectedSupplyDuration": {"value": 14, "unit": "days", "code": "d"}}
    found = facts(raw, knowledge)
    assert found.end == date(2026, 11, 29) and "refill" in found.end_how


def _example(name):
    return json.loads((SHARED / "fhir-examples" / name).read_text())


def test_real_example_capecitabine_cycle_days(knowledge):
    """FHIR core medrx0309: a BSA dose (mg/m2) and boundsPeriod days 1–14 of a cycle."""
    found = facts(_example("r4core-MedicationRequest-medrx0309.json"), knowledge)
    assert found.route == "systemic"
    assert found.dose_mg is None and "mg/m2" in found.dose_problem
    assert found.end is not None and found.end > found.start


def test_real_example_us_core_contained_medication(knowledge):
    raw = _example("uscore-MedicationRequest-contained-oral-axid.json")
    found = facts(raw, knowledge)
    assert found.label and found.route == "systemic"


def test_real_example_epic_three_dose_rates(knowledge):
    """Epic sends calculated, admin-amount and ordered doses: the ordered one is read."""
    raw = _example("epic-MedicationRequest-drospirenone-ethinyl-estradiol.json")
    found = facts(raw, knowledge)
    assert found.start is not None and found.route in ("systemic", "local")
