"""Reading a MedicationRequest: route, first and last day, dose and days — on built orders and real examples."""

from __future__ import annotations

import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.orders import order_facts
from tests.conftest import SHARED
from tests.rules.scenario import RXNORM, SCT, dex_order

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
    assert found.label == "Nizatidine 15 MG/ML Oral Solution [Axid]"
    assert (found.route, found.route_how) == ("systemic", "route: Oral route (coded)")
    # 30 days dispensed with one refill, from 2008-04-05: the last day is 2008-06-03.
    assert found.end == date(2008, 6, 3) and "1 refill" in found.end_how


def test_real_example_epic_three_dose_rates(knowledge):
    """Epic sends calculated, admin-amount and ordered doses: the ordered one is read (1 tablet, no
    strength); its route is an Epic code plus a SNOMED qualifier outside the route set, read as "Oral"."""
    raw = _example("epic-MedicationRequest-drospirenone-ethinyl-estradiol.json")
    found = facts(raw, knowledge)
    assert (found.route, found.route_how, found.route_doubt) == ("systemic", 'route: "Oral"', None)
    assert (found.start, found.end) == (date(2019, 5, 28), date(2020, 5, 26))  # 365 daily doses
    assert found.dose_how == "1 tablet" and "strength" in found.dose_problem


EDQM = "http://standardterms.edqm.eu"
ANS_EDQM = "https://smt.esante.gouv.fr/terminologie-standardterms"


def _with_route(route=None, medication=None, **extra):
    raw = dex_order(route=None, medication=medication, **extra)
    if route is not None:
        raw["dosageInstruction"][0]["route"] = route
    return raw


@pytest.mark.parametrize(("route", "expected"), [
    ({"coding": [{"system": EDQM, "code": "20053000", "display": "Oral use"}]}, "systemic"),
    ({"coding": [{"system": ANS_EDQM, "code": "20045000", "display": "Voie intraveineuse"}]}, "systemic"),
    ({"coding": [{"system": EDQM, "code": "20066000"}]}, "systemic"),
    ({"coding": [{"system": EDQM, "code": "20051000", "display": "Ocular use"}]}, "local"),
    ({"coding": [{"system": ANS_EDQM, "code": "20001000", "display": "Voie auriculaire"}]}, "local"),
    ({"coding": [{"system": EDQM, "code": "20003000"}]}, "local"),
    ({"coding": [{"system": SCT, "code": "34206005"}]}, "systemic"),
    ({"coding": [{"system": SCT, "code": "46713006"}]}, "local"),
])
def test_coded_routes_snomed_and_edqm(knowledge, route, expected):
    found = facts(_with_route(route), knowledge)
    assert (found.route, found.route_doubt) == (expected, None) and "(coded)" in found.route_how


@pytest.mark.parametrize("words", [
    "voie sous-cutanée", "sous-cutanée", "voie sous cutanée", "sub-cutaneous", "subcutaneous", "SC",
    "intra-veineuse", "intraveineuse", "IVD", "voie orale", "per os", "PO", "by mouth", "intramusculaire",
])
def test_systemic_route_words_are_not_split(knowledge, words):
    """Compound words stay whole: "sous-cutanée" is subcutaneous, never the skin word "cutanée"."""
    found = facts(_with_route({"text": words}), knowledge)
    assert (found.route, found.route_doubt) == ("systemic", None), found.route_how


@pytest.mark.parametrize("words", [
    "ophtalmique", "voie ophtalmique", "ophthalmic", "auriculaire", "otic", "cutanée", "voie cutanée",
    "cutaneous", "topical", "nasale", "voie nasale", "inhalée", "inhalation", "oral inhalation",
    "intravitréenne", "intra-articulaire", "injection intra-articulaire",
])
def test_local_route_words(knowledge, words):
    found = facts(_with_route({"text": words}), knowledge)
    assert (found.route, found.route_doubt) == ("local", None), found.route_how


@pytest.mark.parametrize("product", [
    "Dexamethasone 0.1% eye drops", "DEXAMETHASONE 1 mg/mL collyre", "dexaméthasone gouttes auriculaires",
    "dexamethasone crème", "Dexamethasone ointment", "dexamethasone nasal spray",
])
def test_local_products_without_route(knowledge, product):
    found = facts(_with_route(medication={"medicationCodeableConcept": {"text": product}}), knowledge)
    assert (found.route, found.route_doubt) == ("local", None)


@pytest.mark.parametrize("element", [
    {"text": "for a skin rash; apply nothing to the eye"},
    {"patientInstruction": "crème ou collyre: ne pas utiliser"},
    {"additionalInstruction": [{"text": "eye drops separately"}]},
])
def test_instruction_words_never_make_an_order_local(knowledge, element):
    raw = _with_route(medication={"medicationCodeableConcept": {"text": "Dexamethasone 4 mg tablet"}})
    raw["dosageInstruction"][0].update(element)
    raw["reasonCode"] = [{"text": "cutaneous lupus"}]
    raw["note"] = [{"text": "ear infection last year"}]
    found = facts(raw, knowledge)
    assert (found.route, found.route_doubt) == ("systemic", None)
    assert found.route_how == '"tablet" in the product'


@pytest.mark.parametrize(("route", "product", "local_word", "systemic_word"), [
    ({"text": "oral"}, "Dexamethasone eye drops", "eye drops", "oral"),
    ({"text": "IV"}, "dexaméthasone crème", "crème", "IV"),
    ({"coding": [{"system": SCT, "code": "54485002", "display": "Ophthalmic route"}]},
     "Dexamethasone 4 mg tablet", "Ophthalmic route", "tablet"),
])
def test_own_words_that_disagree_are_systemic_and_said(knowledge, route, product, local_word, systemic_word):
    found = facts(_with_route(route, {"medicationCodeableConcept": {"text": product}}), knowledge)
    assert found.route == "systemic"
    assert local_word in found.route_doubt and systemic_word in found.route_doubt


def test_no_route_at_all_is_systemic_and_says_so(knowledge):
    found = facts(_with_route(medication={"medicationCodeableConcept": {"text": "dexamethasone"}}), knowledge)
    assert (found.route, found.route_how) == ("systemic", "route not stated: taken as systemic")


def _timing(timing, **extra):
    raw = dex_order(date(2026, 11, 2), **extra)
    raw["dosageInstruction"][0]["timing"] = timing
    return raw


@pytest.mark.parametrize(("timing", "days", "end", "open_ended"), [
    ({"event": ["2026-11-02T08:00:00+01:00", "2026-11-09"]}, (date(2026, 11, 2), date(2026, 11, 9)),
     date(2026, 11, 9), False),
    ({"repeat": {"boundsPeriod": {"start": "2026-11-03", "end": "2026-11-03"}}}, (date(2026, 11, 3),),
     date(2026, 11, 3), False),
    ({"repeat": {"count": 1}}, (date(2026, 11, 24),), date(2026, 11, 24), False),
    ({"repeat": {"count": 3, "frequency": 1, "period": 1, "periodUnit": "d"}},
     (date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)), date(2026, 11, 26), False),
    ({"repeat": {"boundsDuration": {"value": 2, "code": "d"}, "frequency": 1, "period": 1, "periodUnit": "d"}},
     (date(2026, 11, 24), date(2026, 11, 25)), date(2026, 11, 25), False),
    ({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "WK"}]}},
     None, None, True),
    ({"code": {"text": "weekly"}}, None, None, True),
    ({"repeat": {"boundsPeriod": {"start": "2026-11-02", "end": "2026-11-16"}},
      "code": {"coding": [{"code": "WK"}]}}, (date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)),
     date(2026, 11, 16), False),
    ({}, (date(2026, 11, 24),), None, False),
])
def test_every_timing_shape_gives_its_days(knowledge, timing, days, end, open_ended):
    """No timing start here: the order's day is authoredOn (2026-11-24) unless the timing starts it."""
    found = facts(_timing(timing), knowledge)
    assert (found.days, found.end, found.open_ended) == (days, end, open_ended)


def test_no_timing_at_all_is_one_dose_on_the_order_day(knowledge):
    raw = dex_order()
    del raw["dosageInstruction"][0]["timing"]
    found = facts(raw, knowledge)
    assert (found.days, found.end, found.open_ended) == ((date(2026, 11, 24),), None, False)


def test_a_number_of_doses_without_spacing_has_an_unknown_end(knowledge):
    found = facts(_timing({"repeat": {"count": 4}}), knowledge)
    assert found.end_unknown and found.end is None and not found.open_ended


@pytest.mark.parametrize(("dispense", "end", "open_ended"), [
    ({"quantity": {"value": 160, "unit": "mg", "code": "mg"}}, date(2026, 11, 23), False),
    ({"quantity": {"value": 80, "unit": "mg", "code": "mg"}, "numberOfRepeatsAllowed": 1}, date(2026, 11, 23), False),
    ({"quantity": {"value": 40, "unit": "mg", "code": "mg"}}, date(2026, 11, 2), False),
    ({"expectedSupplyDuration": {"value": 3, "unit": "wk", "code": "wk"}}, date(2026, 11, 22), False),
    # Tablets of a strength the record does not give cannot be counted in 40 mg doses: still no end.
    ({"quantity": {"value": 40, "unit": "tablet", "code": "{tbl}"}}, None, True),
])
def test_dispense_quantity_and_supply_bound_an_open_order(knowledge, dispense, end, open_ended):
    """Weekly 40 mg with no end: the supply dispensed is what ends it (160 mg = 4 doses = 4 weeks)."""
    raw = dex_order(date(2026, 11, 2), days=None, frequency=(1, 1, "wk"), dispenseRequest=dispense)
    found = facts(raw, knowledge)
    assert (found.end, found.open_ended) == (end, open_ended)


def test_dispense_in_tablets_counts_doses_with_the_strength(knowledge):
    medication = {"contained": [{"resourceType": "Medication", "id": "m20", "code": {"text": "Dexamethasone 20 mg"},
                                 "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264"}]},
                                                 "strength": {"numerator": {"value": 20, "code": "mg"},
                                                              "denominator": {"value": 1, "unit": "tablet"}}}]}],
                  "medicationReference": {"reference": "#m20"}}
    raw = dex_order(date(2026, 11, 2), days=None, frequency=(1, 1, "wk"), medication=medication,
                    dispenseRequest={"quantity": {"value": 6, "unit": "tablet", "code": "{tbl}"}})
    assert facts(raw, knowledge).end == date(2026, 11, 16)  # 6 × 20 mg = three 40 mg doses, weekly


@pytest.mark.parametrize("period", [0, -1, 1e-12])
def test_a_period_that_is_no_schedule_is_not_expanded(knowledge, period):
    raw = dex_order(date(2026, 11, 2), days=7)
    raw["dosageInstruction"][0]["timing"]["repeat"]["period"] = period
    found = facts(raw, knowledge)
    assert found.days is None and found.end == date(2026, 11, 8)


def test_a_period_of_1e308_days_is_one_dose(knowledge):
    raw = dex_order(date(2026, 11, 2), days=7)
    raw["dosageInstruction"][0]["timing"]["repeat"]["period"] = 1e308
    assert facts(raw, knowledge).days == (date(2026, 11, 2),)


def test_a_duration_of_ten_million_days_ends_far_past_every_cycle(knowledge):
    raw = dex_order(days=None, authoredOn="2026-11-02")
    repeat = raw["dosageInstruction"][0]["timing"]["repeat"]
    del repeat["boundsPeriod"]
    repeat["boundsDuration"] = {"value": 1e7, "unit": "d", "code": "d"}
    found = facts(raw, knowledge)
    assert found.end == date(2026, 11, 2) + timedelta(days=36499) and not found.open_ended  # capped
