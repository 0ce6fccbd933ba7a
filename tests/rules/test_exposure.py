"""Trial monitoring rules: the dexamethasone a record shows, by arm and cycle, and the findings.

The standard patient (tests/rules/scenario.py) started ICARIA on 2026-09-01: cycle 3 day 1 is 2026-10-27 and
today (2026-11-24) is cycle 4 day 1. Born 1960, so 66: 40 mg on days 1, 8, 15 and 22 in ICARIA.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from cds_service.fhir.parse import parse_resource
from cds_service.fhir.record import PatientRecord
from cds_service.rules.exposure import ARM_A, ARM_B, CANNOT, DOSE, chart_findings, monitor
from tests.rules.scenario import (
    PATIENT_ID,
    RXNORM,
    SCT,
    care_plan,
    day_of,
    dex_order,
    patient,
    research_study,
    research_subject,
)

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 24)
ARM_A_NAME = "dexamethasone arm"
DEX = {"coding": [{"system": RXNORM, "code": "3264", "display": "dexamethasone"}], "text": "dexamethasone"}
ORAL = {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}]}
_FIELDS = {"Patient": None, "ResearchSubject": "research_subjects", "CarePlan": "care_plans",
           "MedicationAdministration": "medication_administrations", "MedicationRequest": "medication_requests",
           "MedicationDispense": "medication_dispenses", "MedicationStatement": "medication_statements"}


def record(*resources) -> PatientRecord:
    rec = PatientRecord(patient_id=PATIENT_ID)
    for raw in resources:
        resource = parse_resource(raw)
        kind = resource.get_resource_type()
        rec.referenced[f"{kind}/{resource.id}"] = resource
        if kind == "Patient":
            rec.patient = resource
        elif _FIELDS.get(kind):
            getattr(rec, _FIELDS[kind]).append(resource)
    return rec


def given(on: date, rid: str, dose: float | None = 40, *, route=ORAL, medication=DEX, status="completed"):
    dosage = {"route": route} if route else {}
    if dose is not None:
        dosage["dose"] = {"value": dose, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    return {"resourceType": "MedicationAdministration", "id": rid, "status": status,
            "medicationCodeableConcept": medication, "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "effectiveDateTime": on.isoformat(), **({"dosage": dosage} if dosage else {})}


def dispensed(on: date, rid: str, days_supply: int | None = 30):
    resource = {"resourceType": "MedicationDispense", "id": rid, "status": "completed",
                "medicationCodeableConcept": DEX, "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "whenHandedOver": on.isoformat(),
                "dosageInstruction": [{"route": ORAL, "doseAndRate": [{"doseQuantity": {"value": 40,
                                                                                       "unit": "mg"}}]}]}
    if days_supply:
        resource["daysSupply"] = {"value": days_supply, "unit": "d", "system": "http://unitsofmeasure.org",
                                  "code": "d"}
    return resource


def reported(on: date, rid: str):
    return {"resourceType": "MedicationStatement", "id": rid, "status": "completed",
            "medicationCodeableConcept": DEX, "subject": {"reference": f"Patient/{PATIENT_ID}"},
            "effectiveDateTime": on.isoformat()}


def arm_b(*extra, birth="1960-05-10"):
    return record(patient(birth), research_study(), research_subject(), care_plan(), *extra)


def arm_a(*extra, birth="1960-05-10", regimen="icaria-arm-a"):
    return record(patient(birth), research_study(), research_subject(ARM_A_NAME), care_plan(regimen), *extra)


def full_cycles(cycles, days=(1, 8, 15, 22), dose=40):
    return [given(day_of(c, d), f"g{c}-{d}", dose) for c in cycles for d in days]


def codes(result):
    return sorted((f.code, f.cycle) for f in result.findings)


def test_not_enrolled_or_only_screened_is_not_monitored(knowledge):
    assert monitor(record(patient()), knowledge, TODAY, PARIS) is None
    screened = record(patient(), research_study(), research_subject(status="candidate"), care_plan())
    assert monitor(screened, knowledge, TODAY, PARIS) is None


def test_arm_b_correct_cycles_1_and_2_report_nothing_and_sum_the_dose(knowledge):
    result = monitor(arm_b(*full_cycles((1, 2))), knowledge, TODAY, PARIS)
    assert result.findings == ()
    assert (result.arm, result.regimen, result.c1d1, result.cycle, result.cycle_day) == ("B", "ICARIA",
                                                                                          date(2026, 9, 1), 4, 1)
    assert [c.given_mg for c in result.cycles] == [160, 160, 0, 0]
    assert [c.cumulative_mg for c in result.cycles] == [160, 320, 320, 320]
    assert result.given_mg == 320 and result.subject_id == "DXF-0042"
    assert [c.expected for c in result.cycles] == [True, True, False, False]


@pytest.mark.parametrize("day", [1, 3, 28])
def test_arm_b_given_in_cycle_3_is_a_deviation(knowledge, day):
    result = monitor(arm_b(*full_cycles((1, 2)), given(day_of(3, day), "late")), knowledge, TODAY, PARIS)
    assert codes(result) == [(ARM_B, 3)]
    finding = result.findings[0]
    assert (finding.cycle_day, finding.day, finding.kinds) == (day, day_of(3, day), ("given",))
    assert f"given {day_of(3, day).isoformat()}, cycle 3 day {day}" in finding.text
    assert result.cycles[2].given_mg == 40


@pytest.mark.parametrize(("start_day", "supply", "runs_in"), [(10, 30, True), (28, 2, True), (10, 19, False),
                                                                 (1, 28, False)])
def test_arm_b_dispense_counts_when_its_supply_runs_into_cycle_3(knowledge, start_day, supply, runs_in):
    result = monitor(arm_b(dispensed(day_of(2, start_day), "d1", supply)), knowledge, TODAY, PARIS)
    if runs_in:
        assert codes(result) == [(ARM_B, 3)]
        finding = result.findings[0]
        assert (finding.cycle_day, finding.kinds, finding.starts) == (1, ("dispensed",), (day_of(2, start_day),))
    else:
        assert result.findings == ()


def test_arm_b_dispense_without_supply_in_cycle_2_cannot_be_verified(knowledge):
    result = monitor(arm_b(dispensed(day_of(2, 20), "d1", None)), knowledge, TODAY, PARIS)
    assert codes(result) == [(CANNOT, 2)]
    assert "may run into cycle 3" in result.findings[0].text
    assert monitor(arm_b(dispensed(day_of(1, 20), "d1", None)), knowledge, TODAY, PARIS).findings == ()


def test_arm_b_order_in_cycle_3_and_order_running_into_it(knowledge):
    in_c3 = dex_order(day_of(3, 8), order_id="o1", status="active")
    result = monitor(arm_b(in_c3), knowledge, TODAY, PARIS)
    assert codes(result) == [(ARM_B, 3)] and result.findings[0].kinds == ("ordered",)
    running = dex_order(day_of(2, 22), order_id="o2", status="completed", days=14, frequency=(1, 7, "d"))
    result = monitor(arm_b(running), knowledge, TODAY, PARIS)
    assert codes(result) == [(ARM_B, 3)] and result.findings[0].day == day_of(3, 1)


def test_arm_b_given_and_ordered_the_same_cycle_is_one_deviation(knowledge):
    result = monitor(arm_b(dex_order(day_of(3, 1), order_id="o1", status="active"), given(day_of(3, 1), "g")),
                     knowledge, TODAY, PARIS)
    assert codes(result) == [(ARM_B, 3)]
    assert set(result.findings[0].kinds) == {"given", "ordered"}


@pytest.mark.parametrize("status", ["not-done", "entered-in-error", "unknown"])
def test_administrations_that_did_not_happen_do_not_count(knowledge, status):
    assert monitor(arm_b(given(day_of(3, 1), "g", status=status)), knowledge, TODAY, PARIS).findings == ()


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error", "draft"])
def test_void_orders_do_not_count(knowledge, status):
    order = dex_order(day_of(3, 1), order_id="o1", status=status)
    assert monitor(arm_b(order), knowledge, TODAY, PARIS).findings == ()
    assert monitor(arm_b(dex_order(day_of(3, 1), order_id="o2", status="active", doNotPerform=True)),
                   knowledge, TODAY, PARIS).findings == ()


@pytest.mark.parametrize("route", [{"text": "ophthalmic"}, {"text": "voie cutanée"},
                                   {"coding": [{"system": SCT, "code": "54485002", "display": "Ophthalmic route"}]}])
def test_local_dexamethasone_is_not_exposure(knowledge, route):
    result = monitor(arm_b(given(day_of(3, 1), "g", route=route)), knowledge, TODAY, PARIS)
    assert result.findings == () and result.events == ()


def test_drug_decided_by_code_as_the_hooks_do(knowledge):
    dxm = {"coding": [{"system": "http://www.whocc.no/atc", "code": "R05DA09", "display": "dextromethorphan"}],
           "text": "DXM"}
    assert monitor(arm_b(given(day_of(3, 1), "g", medication=dxm)), knowledge, TODAY, PARIS).findings == ()
    decadron = {"coding": [{"system": RXNORM, "code": "197577", "display": "Decadron 4 MG Oral Tablet"}]}
    result = monitor(arm_b(given(day_of(3, 1), "g", dose=None, medication=decadron)), knowledge, TODAY, PARIS)
    assert (ARM_B, 3) in codes(result)


def test_arm_b_reported_in_cycle_3_asks_for_a_check_not_a_deviation(knowledge):
    result = monitor(arm_b(reported(day_of(3, 5), "s1")), knowledge, TODAY, PARIS)
    assert codes(result) == [(CANNOT, 3)] and "reported" in result.findings[0].text


def test_arm_a_complete_cycles_report_nothing(knowledge):
    result = monitor(arm_a(*full_cycles((1, 2, 3))), knowledge, TODAY, PARIS)
    assert result.findings == () and result.arm == "A" and result.given_mg == 480


def test_arm_a_cycle_without_dexamethasone(knowledge):
    result = monitor(arm_a(*full_cycles((1, 3))), knowledge, TODAY, PARIS)
    assert codes(result) == [(ARM_A, 2)]
    assert result.findings[0].day == day_of(2, 28)


def test_arm_a_an_order_covering_the_cycle_is_enough(knowledge):
    order = dex_order(day_of(2, 1), order_id="o1", status="completed", days=22, frequency=(1, 7, "d"))
    assert monitor(arm_a(*full_cycles((1, 3)), order), knowledge, TODAY, PARIS).findings == ()


def test_arm_a_current_cycle_checked_on_its_last_day_only(knowledge):
    resources = full_cycles((1, 2, 3))
    last_day = day_of(4, 28)
    assert monitor(arm_a(*resources), knowledge, last_day - timedelta(days=1), PARIS).findings == ()
    result = monitor(arm_a(*resources), knowledge, last_day, PARIS)
    assert codes(result) == [(ARM_A, 4)]
    assert [f.code for f in chart_findings(arm_a(*resources), knowledge, last_day, PARIS)] == [ARM_A]
    # The day after, cycle 5 is current: the monitor still reports cycle 4, the chart no longer does.
    assert chart_findings(arm_a(*resources), knowledge, last_day + timedelta(days=1), PARIS) == ()


@pytest.mark.parametrize(("birth", "dose", "day", "differs"), [
    ("1960-05-10", 40, 8, False), ("1960-05-10", 20, 8, True), ("1948-01-01", 20, 8, False),
    ("1948-01-01", 40, 8, True), ("1960-05-10", 40, 9, True),
])
def test_dose_and_days_given_against_the_regimen_for_the_age(knowledge, birth, dose, day, differs):
    resources = [*full_cycles((1, 3), dose=40 if birth == "1960-05-10" else 20),
                 given(day_of(2, day), "x", dose)]
    result = monitor(arm_a(*resources, birth=birth), knowledge, TODAY, PARIS)
    assert codes(result) == ([(DOSE, 2)] if differs else [])


def test_cycle_1_day_1_unknown_cannot_be_verified(knowledge):
    result = monitor(record(patient(), research_study(), research_subject(), given(day_of(3, 1), "g")),
                     knowledge, TODAY, PARIS)
    assert [f.code for f in result.findings] == [CANNOT] and result.cycles == ()
    assert "cycle 1 day 1 is unknown" in result.findings[0].text


def test_arm_unknown_cannot_be_verified(knowledge):
    result = monitor(record(patient(), research_study(), research_subject(None), care_plan()), knowledge, TODAY,
                     PARIS)
    assert [f.code for f in result.findings] == [CANNOT] and "arm is unknown" in result.findings[0].text


def test_site_from_the_enrolment_or_the_study(knowledge):
    site_ext = [{"url": "https://dexfree.example.org/fhir/StructureDefinition/site",
                 "valueReference": {"display": "Hôpital Saint-Louis"}}]
    with_ext = record(patient(), research_study(), research_subject(extension=site_ext), care_plan())
    assert monitor(with_ext, knowledge, TODAY, PARIS).site == "Hôpital Saint-Louis"
    study = {**research_study(), "site": [{"reference": "Location/necker", "display": "Necker"}]}
    assert monitor(record(patient(), study, research_subject(), care_plan()), knowledge, TODAY, PARIS).site == "Necker"
    assert monitor(arm_b(), knowledge, TODAY, PARIS).site == "(site not recorded)"
