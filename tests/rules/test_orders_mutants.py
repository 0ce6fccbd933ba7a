"""The order reader's corners the mutation run found untested (rules/orders.py): doses counted from the supply
dispensed in every unit, a Medication's strength written every way, and the route and dose readers of the
other medication resources (trial monitoring).

Built like tests/rules/test_orders.py: the suite's today is 2026-11-24, Europe/Paris.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.orders import MAX_OCCURRENCES, dose_of, route_of
from tests.rules.scenario import PATIENT_ID, RXNORM, dex_order
from tests.rules.test_orders import facts

MONDAY = date(2026, 11, 2)
FOUR_WEEKS = date(2026, 11, 23)  # the 4th weekly dose from MONDAY


def _tablets(*ingredients: dict[str, Any]) -> dict[str, Any]:
    """A contained dexamethasone tablet Medication with these ingredients."""
    medication = {"resourceType": "Medication", "id": "tab", "code": {"text": "Dexamethasone tablet"},
                  "ingredient": list(ingredients)}
    return {"contained": [medication], "medicationReference": {"reference": "#tab"}}


def _dex(strength: dict[str, Any] | None) -> dict[str, Any]:
    item = {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}]}}
    return {**item, "strength": strength} if strength is not None else item


MG_20_A_TABLET = _tablets(_dex({"numerator": {"value": 20, "unit": "mg", "code": "mg"},
                                "denominator": {"value": 1, "unit": "tablet", "code": "{tbl}"}}))


def _weekly(dispense: dict[str, Any] | None, rate: dict[str, Any] | None = None, **change: Any) -> dict[str, Any]:
    """Weekly from Monday 2 November with nothing ending it but the supply dispensed; `rate` its doseAndRate."""
    raw = dex_order(MONDAY, days=None, frequency=(1, 1, "wk"), **change)
    if dispense is not None:
        raw["dispenseRequest"] = dispense
    if rate is not None:
        raw["dosageInstruction"][0]["doseAndRate"] = [rate]
    return raw


def _quantity(value: float, unit: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"value": value, **({"unit": unit} if unit else {}), **({"code": code} if code else {})}


@pytest.mark.parametrize(("dispense", "dose", "medication"), [
    ({"quantity": _quantity(0.16, "g", "g")}, None, None),
    ({"quantity": _quantity(160, unit="mg")}, None, None),
    ({"quantity": _quantity(160, code="mg")}, None, None),
    ({"quantity": _quantity(160, "mg", "mg")}, {"doseQuantity": _quantity(40, unit="mg")}, None),
    ({"quantity": _quantity(160, "mg", "mg")}, {"doseQuantity": _quantity(40, code="mg")}, None),
    ({"quantity": _quantity(160, "mg", "mg")}, {"doseQuantity": _quantity(0.04, "g", "g")}, None),
    # Tablets dispensed, tablets a dose: counted without a strength.
    ({"quantity": _quantity(8, "tablet", "{tbl}")}, {"doseQuantity": _quantity(2, "tablet", "{tbl}")}, None),
    # Milligrams dispensed, tablets a dose: counted with the tablet's strength (2 × 20 mg a dose).
    ({"quantity": _quantity(160, "mg", "mg")}, {"doseQuantity": _quantity(2, "tablet", "{tbl}")}, MG_20_A_TABLET),
], ids=["quantity-in-g", "quantity-unit-only", "quantity-code-only", "dose-unit-only", "dose-code-only",
        "dose-in-g", "tablets-for-tablets", "mg-for-tablets-of-a-strength"])
def test_four_doses_dispensed_end_a_weekly_order_on_the_fourth_week(knowledge, dispense, dose, medication):
    raw = _weekly(dispense, dose, **({"medication": medication} if medication else {}))
    found = facts(raw, knowledge)
    assert (found.end, found.end_how, found.open_ended) == (
        FOUR_WEEKS, "the quantity dispensed (4 doses)", False)


RANGE = {"doseRange": {"low": _quantity(20, "mg", "mg"), "high": _quantity(40, "mg", "mg")}}


@pytest.mark.parametrize(("dispense", "change", "dose"), [
    ({"quantity": _quantity(160, "mg", "mg")}, {"dose": None}, None),  # no dose to count in
    ({"quantity": _quantity(160, "mg", "mg")}, {}, RANGE),  # a dose range is no dose to count in
    ({"validityPeriod": {"start": "2026-11-02", "end": "2027-11-01"}}, {}, None),  # no quantity dispensed
    # A dose in millilitres cannot be counted from milligrams, whatever the strength per millilitre says.
    ({"quantity": _quantity(160, "mg", "mg")}, {"medication": _tablets(_dex(
        {"numerator": _quantity(4, "mg", "mg"), "denominator": _quantity(1, "mL", "mL")}))},
     {"doseQuantity": _quantity(10, "mL", "mL")}),
], ids=["no-dose", "dose-range", "validity-period-only", "ml-dose"])
def test_a_supply_that_cannot_be_counted_in_doses_leaves_the_order_open(knowledge, dispense, change, dose):
    found = facts(_weekly(dispense, dose, **change), knowledge)
    assert (found.end, found.end_how, found.open_ended) == (None, None, True)


@pytest.mark.parametrize(("medication", "tablets", "mg", "how"), [
    # An excipient without a strength listed first: the dexamethasone after it gives the strength.
    (_tablets({"itemCodeableConcept": {"text": "lactose"}},
              _dex({"numerator": _quantity(4, "mg", "mg"), "denominator": _quantity(1, "tablet", "{tbl}")})),
     10, 40, "10 tablet of 4 mg"),
    # The strength of a pack of 10 tablets, its numerator with a unit and no code: 40 mg a tablet.
    (_tablets(_dex({"numerator": _quantity(400, unit="mg"), "denominator": _quantity(10, "tablet", "{tbl}")})),
     1, 40, "1 tablet of 40 mg"),
    # 500 microgram tablets, no denominator: per tablet.
    (_tablets(_dex({"numerator": _quantity(500, "µg", "ug")})), 2, 1, "2 tablet of 0.5 mg"),
], ids=["excipient-first", "per-pack-of-ten", "micrograms-no-denominator"])
def test_a_tablet_dose_in_mg_from_the_medications_strength(knowledge, medication, tablets, mg, how):
    found = facts(dex_order(dose=tablets, unit="tablet", medication=medication), knowledge)
    assert (found.dose_mg, found.dose_how, found.dose_problem) == (pytest.approx(mg), how, None)


def _administration(**fields: Any) -> Any:
    return parse_resource({"resourceType": "MedicationAdministration", "id": "ma-1", "status": "completed",
                           "subject": {"reference": f"Patient/{PATIENT_ID}"},
                           "effectiveDateTime": "2026-11-02", **fields})


def test_the_route_of_an_administration_reads_its_product(knowledge):
    given = _administration(medicationCodeableConcept={"text": "Dexamethasone 0.1% eye drops"},
                            dosage={"dose": _quantity(1, "drop", "[drp]")})
    route, how, doubt = route_of(given, PatientRecord(patient_id=PATIENT_ID), knowledge)
    assert (route, doubt) == ("local", None) and "in the product" in how


def test_the_dose_of_an_administration_in_tablets_reads_its_medications_strength():
    given = _administration(**MG_20_A_TABLET, dosage={"dose": _quantity(2, "tablet", "{tbl}")})
    assert dose_of(given, PatientRecord(patient_id=PATIENT_ID)) == (40, "2 tablet of 20 mg", None)


@pytest.mark.parametrize(("timing", "start", "how"), [
    # The timing's events in the patient's day: 23:30 UTC is the next day in Paris.
    ({"event": ["2026-11-02T23:30:00Z"]}, date(2026, 11, 3), "the dosage timing"),
    ({"repeat": {"boundsPeriod": {"start": "2026-11-10"}}}, date(2026, 11, 10), "the dosage timing"),
    ({}, date(2026, 11, 20), "the order date (authoredOn)"),
], ids=["event-near-midnight", "bounds-start", "no-start-in-the-timing"])
def test_the_first_day_and_where_it_comes_from(knowledge, timing, start, how):
    raw = dex_order(authoredOn="2026-11-20")
    raw["dosageInstruction"][0]["timing"] = timing
    found = facts(raw, knowledge)
    assert (found.start, found.start_how) == (start, how)


def test_without_timing_or_order_date_the_first_day_is_today(knowledge):
    raw = dex_order()
    del raw["dosageInstruction"][0]["timing"], raw["authoredOn"]
    found = facts(raw, knowledge)
    assert (found.start, found.start_how) == (date(2026, 11, 24), "today (the order gives no start)")


def test_a_dosage_without_timing_does_not_hide_the_next_dosages_start(knowledge):
    raw = dex_order(date(2026, 11, 10), authoredOn="2026-11-02")
    first = {k: v for k, v in raw["dosageInstruction"][0].items() if k != "timing"}
    raw["dosageInstruction"].insert(0, first)
    assert facts(raw, knowledge).start == date(2026, 11, 10)


def _bounded(repeat: dict[str, Any], start: str = "2026-11-02", end: str | None = "2026-11-15") -> dict[str, Any]:
    raw = dex_order(MONDAY)
    raw["dosageInstruction"][0]["timing"] = {
        "repeat": {"boundsPeriod": {"start": start, **({"end": end} if end else {})}, **repeat}}
    return raw


@pytest.mark.parametrize(("repeat", "days"), [
    # Twice a week for two weeks: every 3.5 days.
    ({"frequency": 2, "period": 1, "periodUnit": "wk"}, (2, 5, 9, 12)),
    # A period without a frequency is once a period.
    ({"period": 1, "periodUnit": "wk"}, (2, 9)),
    # Once a minute is still a schedule (shorter is not): every day of the bounds.
    ({"frequency": 1, "period": 1, "periodUnit": "min"}, tuple(range(2, 16))),
    # Days of the week: the end day counts.
    ({"dayOfWeek": ["mon"]}, (2, 9)),
    ({"dayOfWeek": ["mon", "thu"]}, (2, 5, 9, 12)),
], ids=["twice-weekly", "period-without-frequency", "every-minute", "mondays-to-a-monday", "mon-thu"])
def test_the_days_of_a_bounded_schedule(knowledge, repeat, days):
    found = facts(_bounded(repeat, end="2026-11-09" if repeat.get("dayOfWeek") == ["mon"] else "2026-11-15"),
                  knowledge)
    assert found.days == tuple(date(2026, 11, d) for d in days)


def test_a_number_of_doses_on_days_of_the_week_ends_on_the_last_one(knowledge):
    found = facts(_bounded({"dayOfWeek": ["mon", "thu"], "count": 4}, end=None), knowledge)
    assert found.days == (date(2026, 11, 2), date(2026, 11, 5), date(2026, 11, 9), date(2026, 11, 12))
    assert (found.end, found.end_how) == (date(2026, 11, 12), "its number of doses (4)")


def test_days_of_the_week_none_of_which_falls_in_the_bounds(knowledge):
    """Tuesday to Wednesday, Mondays only: no dose day, and the bounds still end it."""
    found = facts(_bounded({"dayOfWeek": ["mon"]}, start="2026-11-03", end="2026-11-04"), knowledge)
    assert (found.days, found.end, found.end_how) == (None, date(2026, 11, 4), "the dosage timing's end")


def test_a_daily_schedule_whose_bounds_end_before_they_start(knowledge):
    found = facts(_bounded({"frequency": 1, "period": 1, "periodUnit": "d"}, start="2026-11-10",
                           end="2026-11-02"), knowledge)
    assert (found.start, found.days, found.end) == (date(2026, 11, 10), None, date(2026, 11, 2))


def test_the_bounds_end_is_the_patients_day(knowledge):
    found = facts(_bounded({"frequency": 1, "period": 1, "periodUnit": "d"}, end="2026-11-08T23:30:00Z"), knowledge)
    assert (found.end, found.end_how) == (date(2026, 11, 9), "the dosage timing's end")
    assert found.days[-1] == date(2026, 11, 9)


def test_a_daily_schedule_over_years_is_expanded_for_its_first_occurrences(knowledge):
    found = facts(_bounded({"frequency": 1, "period": 1, "periodUnit": "d"}, end="2028-11-01"), knowledge)
    assert len(found.days) == MAX_OCCURRENCES and found.days[-1] == MONDAY + timedelta(days=MAX_OCCURRENCES - 1)
    assert found.end == date(2028, 11, 1)


def test_an_every_twenty_minutes_schedule_is_expanded_for_a_bounded_number_of_steps(knowledge):
    """Several doses a day share a day: the steps are bounded too (MAX_OCCURRENCES × 48 of them)."""
    found = facts(_bounded({"frequency": 1, "period": 20, "periodUnit": "min"}, end="2028-11-01"), knowledge)
    steps = MAX_OCCURRENCES * 48
    assert found.days[-1] == MONDAY + timedelta(days=math.floor((steps - 1) * 20 / 1440))
    assert len(found.days) == math.floor((steps - 1) * 20 / 1440) + 1


@pytest.mark.parametrize("duration", [{"value": 0, "code": "d"}, {"value": 2, "unit": "months", "code": "mo"}],
                         ids=["zero-days", "months"])
def test_a_duration_that_gives_no_last_day_leaves_a_daily_order_open(knowledge, duration):
    raw = dex_order(days=None, authoredOn="2026-11-02")
    repeat = raw["dosageInstruction"][0]["timing"]["repeat"]
    del repeat["boundsPeriod"]
    repeat["boundsDuration"] = duration
    found = facts(raw, knowledge)
    assert (found.start, found.end, found.open_ended) == (date(2026, 11, 2), None, True)


@pytest.mark.parametrize("coding", [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "Q36H"},
    {"code": "D1-8-15"},
], ids=["gts-code-not-a-number-of-days", "local-code-without-system"])
def test_a_timing_code_that_is_no_known_frequency_repeats_with_no_end(knowledge, coding):
    raw = dex_order(MONDAY)
    raw["dosageInstruction"][0]["timing"] = {"code": {"coding": [coding]}}
    found = facts(raw, knowledge)
    assert (found.days, found.end, found.open_ended) == (None, None, True)


def test_a_supply_without_refills_says_so_without_a_refill(knowledge):
    found = facts(_weekly({"expectedSupplyDuration": {"value": 3, "unit": "wk", "code": "wk"}}), knowledge)
    assert (found.end, found.end_how) == (date(2026, 11, 22), "the supply dispensed (3 wk)")
    refilled = facts(_weekly({"expectedSupplyDuration": {"value": 3, "unit": "wk", "code": "wk"},
                              "numberOfRepeatsAllowed": 1}), knowledge)
    assert (refilled.end, refilled.end_how) == (date(2026, 12, 13), "the supply dispensed (3 wk with 1 refill(s))")


@pytest.mark.parametrize(("dispense", "end", "how"), [
    ({"quantity": _quantity(40, "mg", "mg")}, MONDAY, "the quantity dispensed (one dose)"),
    ({"quantity": _quantity(80, "mg", "mg")}, date(2026, 11, 9), "the quantity dispensed (2 doses)"),
    # A supply in months is not read: the quantity dispensed ends the order.
    ({"expectedSupplyDuration": {"value": 1, "unit": "month", "code": "mo"}, "quantity": _quantity(160, "mg", "mg")},
     FOUR_WEEKS, "the quantity dispensed (4 doses)"),
], ids=["one-dose", "two-doses", "supply-in-months"])
def test_the_doses_dispensed_say_how_many(knowledge, dispense, end, how):
    found = facts(_weekly(dispense), knowledge)
    assert (found.end, found.end_how) == (end, how)


def test_a_timing_and_a_supply_ending_the_same_day_say_the_timing(knowledge):
    raw = _bounded({"frequency": 1, "period": 1, "periodUnit": "wk"}, end="2026-11-23")
    raw["dispenseRequest"] = {"quantity": _quantity(160, "mg", "mg")}
    assert (facts(raw, knowledge).end, facts(raw, knowledge).end_how) == (FOUR_WEEKS, "the dosage timing's end")


def test_an_event_near_midnight_is_given_on_the_patients_day(knowledge):
    raw = dex_order(MONDAY)
    raw["dosageInstruction"][0]["timing"] = {"event": ["2026-11-02T23:30:00Z"]}
    found = facts(raw, knowledge)
    assert (found.days, found.end, found.end_how) == ((date(2026, 11, 3),), date(2026, 11, 3),
                                                      "the dosage timing's events")


def test_events_and_a_repeat_of_one_timing_both_give_days(knowledge):
    raw = dex_order(MONDAY)
    raw["dosageInstruction"][0]["timing"] = {"event": ["2026-11-02"], "repeat": {
        "boundsPeriod": {"start": "2026-11-09", "end": "2026-11-11"}, "frequency": 1, "period": 1, "periodUnit": "d"}}
    found = facts(raw, knowledge)
    assert found.days == (date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 10), date(2026, 11, 11))
    assert (found.end, found.end_how) == (date(2026, 11, 11), "the dosage timing's end")


def _dosage(timing: dict[str, Any]) -> dict[str, Any]:
    dosage = dex_order()["dosageInstruction"][0]
    return {**dosage, "timing": timing}


DAILY = {"frequency": 1, "period": 1, "periodUnit": "d"}


def test_each_dosage_gives_its_own_days_from_its_own_start(knowledge):
    """Two dosages, each its bounds (the second's start at 23:30 UTC: 9 November in Paris)."""
    raw = dex_order(MONDAY)
    raw["dosageInstruction"] = [
        _dosage({"repeat": {"boundsPeriod": {"start": "2026-11-02", "end": "2026-11-03"}, **DAILY}}),
        _dosage({"repeat": {"boundsPeriod": {"start": "2026-11-08T23:30:00Z", "end": "2026-11-10"}, **DAILY}}),
    ]
    found = facts(raw, knowledge)
    assert found.days == (date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 9), date(2026, 11, 10))
    assert found.end == date(2026, 11, 10)


def test_a_daily_dosage_then_a_single_event(knowledge):
    raw = dex_order(MONDAY)
    raw["dosageInstruction"] = [
        _dosage({"repeat": {"boundsPeriod": {"start": "2026-11-02", "end": "2026-11-04"}, **DAILY}}),
        _dosage({"event": ["2026-11-09"]}),
    ]
    found = facts(raw, knowledge)
    assert found.days == (date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 9))


def test_one_dose_on_the_first_thursday(knowledge):
    found = facts(_bounded({"dayOfWeek": ["thu"], "count": 1}, end=None), knowledge)
    assert (found.days, found.end, found.end_how) == ((date(2026, 11, 5),), date(2026, 11, 5),
                                                      "its number of doses (1)")


def test_a_single_dose_says_so(knowledge):
    found = facts(_bounded({"count": 1}, start="2026-11-10", end=None), knowledge)
    assert (found.days, found.end, found.end_how) == ((date(2026, 11, 10),), date(2026, 11, 10),
                                                      "the dosage timing (one dose)")


def test_an_order_without_any_dosage_is_one_dose_on_its_order_date(knowledge):
    raw = dex_order(authoredOn="2026-11-20")
    del raw["dosageInstruction"]
    found = facts(raw, knowledge)
    assert (found.start, found.days, found.end, found.open_ended) == (date(2026, 11, 20), (date(2026, 11, 20),),
                                                                      None, False)


@pytest.mark.parametrize(("second", "open_ended", "end_unknown"), [
    ({"repeat": {"boundsPeriod": {"start": "2026-11-02"}, "frequency": 1, "period": 1, "periodUnit": "wk"}},
     True, False),
    ({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "WK"}]}},
     True, False),
    ({"repeat": {"boundsPeriod": {"start": "2026-11-02"}, **DAILY}}, True, False),
    ({"repeat": {"count": 4}}, False, True),  # four doses, spacing not said
], ids=["weekly-no-end", "coded-weekly", "daily-no-end", "count-without-spacing"])
def test_a_dosage_that_nothing_ends_is_not_ended_by_another_dosage(knowledge, second, open_ended, end_unknown):
    """A loading dose (an event), then a dosage with no end: the order has no end (issue 14's mutation run
    found the loading dose's day taken for the order's last day)."""
    raw = dex_order(MONDAY)
    raw["dosageInstruction"] = [_dosage({"event": ["2026-11-02"]}), _dosage(second)]
    found = facts(raw, knowledge)
    assert (found.days, found.end, found.end_how) == (None, None, None)
    assert (found.open_ended, found.end_unknown) == (open_ended, end_unknown)


def test_the_supply_dispensed_still_ends_a_dosage_that_nothing_else_ends(knowledge):
    raw = _weekly({"quantity": _quantity(160, "mg", "mg")})
    raw["dosageInstruction"].insert(0, _dosage({"event": ["2026-11-02"]}))
    found = facts(raw, knowledge)
    assert (found.end, found.end_how, found.open_ended) == (FOUR_WEEKS, "the quantity dispensed (4 doses)", False)


def test_the_ordered_dose_is_read_before_a_calculated_one(knowledge):
    types = "http://terminology.hl7.org/CodeSystem/dose-rate-type"
    raw = dex_order()
    raw["dosageInstruction"][0]["doseAndRate"] = [
        {"type": {"coding": [{"system": types, "code": "calculated"}]}, "doseQuantity": _quantity(20, "mg", "mg")},
        {"type": {"coding": [{"system": types, "code": "ordered"}]}, "doseQuantity": _quantity(40, "mg", "mg")},
    ]
    found = facts(raw, knowledge)
    assert (found.dose_mg, found.dose_how) == (40, "40 mg")


def test_a_draft_without_id_is_named_as_such(knowledge):
    raw = dex_order()
    del raw["id"]
    found = facts(raw, knowledge)
    assert (found.reference, found.evidence) == ("MedicationRequest (draft without id)",
                                                 ("MedicationRequest (draft without id)",))


def test_the_evidence_names_a_referenced_medication_but_not_a_contained_one(knowledge):
    assert facts(dex_order(medication=MG_20_A_TABLET), knowledge).evidence == ("MedicationRequest/dex-1",)
    record = PatientRecord(patient_id=PATIENT_ID)
    record.referenced["Medication/dex-med"] = parse_resource(
        {"resourceType": "Medication", "id": "dex-med", "code": {"text": "Dexamethasone 4 mg tablet"}})
    raw = dex_order(medication={"medicationReference": {"reference": "Medication/dex-med"}})
    assert facts(raw, knowledge, record).evidence == ("MedicationRequest/dex-1", "Medication/dex-med")


@pytest.mark.parametrize(("rates", "dose"), [
    ([{"doseQuantity": _quantity(40, unit="mg")}], (40, "40 mg", None)),
    ([{"doseQuantity": _quantity(40, code="mg")}], (40, "40 mg", None)),
    ([{"doseQuantity": _quantity(40)}], (None, "40", "the dose unit (none) is not a mass")),
    ([{"doseQuantity": {"unit": "mg", "code": "mg"}}], (None, None, "the dose has no value")),
    ([{"doseQuantity": _quantity(40, "mg", "mg")}, {"doseQuantity": _quantity(20, "mg", "mg")}], (40, "40 mg", None)),
    # An infusion rate beside the dose is not a dose range.
    ([{"rateQuantity": _quantity(100, "mL/h", "mL/h")}, {"doseQuantity": _quantity(40, "mg", "mg")}],
     (40, "40 mg", None)),
    ([RANGE], (None, "a dose range", "the dose is a range, not one dose")),
    ([], (None, "as ordered", "the order has no structured dose")),
], ids=["unit-only", "code-only", "no-unit", "no-value", "the-first-of-two", "a-rate-then-a-dose", "range", "none"])
def test_the_dose_as_read_and_as_written(knowledge, rates, dose):
    raw = dex_order()
    raw["dosageInstruction"][0]["doseAndRate"] = rates
    found = facts(raw, knowledge)
    assert (found.dose_mg, found.dose_how, found.dose_problem) == dose


def test_the_route_of_an_administration_reads_its_referenced_medication(knowledge):
    record = PatientRecord(patient_id=PATIENT_ID)
    record.referenced["Medication/eye"] = parse_resource(
        {"resourceType": "Medication", "id": "eye", "code": {"text": "Dexamethasone 0.1% eye drops"}})
    given = _administration(medicationReference={"reference": "Medication/eye"})
    assert route_of(given, record, knowledge)[0] == "local"


def test_a_route_coded_outside_the_route_sets_is_read_by_its_display(knowledge):
    raw = dex_order(route=None)
    raw["dosageInstruction"][0]["route"] = {"coding": [{"system": "urn:oid:1.2.250.1.213.2.99", "code": "OPH",
                                                        "display": "voie ophtalmique"}]}
    found = facts(raw, knowledge)
    assert (found.route, found.route_how) == ("local", 'route: "voie ophtalmique"')


def test_a_product_named_only_by_its_codings_display(knowledge):
    raw = dex_order(route=None, medication={"medicationCodeableConcept": {"coding": [
        {"system": "urn:oid:1.2.250.1.213.2.98", "code": "X7", "display": "Dexamethasone 0.1% eye drops"}]}})
    found = facts(raw, knowledge)
    assert (found.route, found.route_how) == ("local", '"eye drops" in the product')


def test_the_medications_dose_form_says_local(knowledge):
    medication = {"contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "Dexamethasone 1 mg/mL"},
                                 "form": {"text": "collyre"}}], "medicationReference": {"reference": "#m1"}}
    found = facts(dex_order(route=None, medication=medication), knowledge)
    assert (found.route, found.route_how, found.route_doubt) == ("local", '"collyre" in the dose form', None)


def test_a_systemic_product_code_says_so(knowledge):
    raw = dex_order(route=None, medication={"medicationCodeableConcept": {"coding": [
        {"system": RXNORM, "code": "197582"}]}})
    assert facts(raw, knowledge).route_how == "a systemic product code"


def test_every_display_of_the_product_is_read_not_only_its_name(knowledge):
    raw = dex_order(route=None, medication={"medicationCodeableConcept": {"text": "Dexamethasone 1 mg/mL", "coding": [
        {"system": "urn:oid:1.2.250.1.213.2.98", "code": "X8", "display": "Dexamethasone eye drops"}]}})
    found = facts(raw, knowledge)
    assert (found.route, found.route_how) == ("local", '"eye drops" in the product')


def test_tablets_without_a_strength_say_why_the_dose_is_unknown(knowledge):
    found = facts(dex_order(dose=10, unit="tablet"), knowledge)
    assert (found.dose_mg, found.dose_how, found.dose_problem) == (
        None, "10 tablet", "the dose is in units whose strength the record does not give")


def test_every_day_of_the_week_over_years_is_expanded_for_its_first_occurrences(knowledge):
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    found = facts(_bounded({"dayOfWeek": every_day}, end="2028-11-01"), knowledge)
    assert len(found.days) == MAX_OCCURRENCES and found.days[-1] == MONDAY + timedelta(days=MAX_OCCURRENCES - 1)
