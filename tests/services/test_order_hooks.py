"""The dexamethasone rules through order-sign / order-select: a scenario table of every rule and its near misses.

Each case is one fixture request (built with tests/rules/scenario.py): the standard patient is in arm B of
NCT06561854 on ICARIA since 2026-09-01, so cycle 3 day 1 is 2026-10-27. Every response is also checked
against the CDS Hooks rules.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.rules.scenario import (
    C1D1,
    RXNORM,
    administration,
    call,
    care_plan,
    day_of,
    dex_order,
    medication_request,
    patient,
    research_study,
    research_subject,
)
from tests.spec import check_cds_response

ARM_A = "dexamethasone arm"


def post(client, body):
    service = "dex-free-order-select" if body["hook"] == "order-select" else "dex-free-order-sign"
    response = client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    check_cds_response(payload)
    return payload["cards"]


def rules(cards):
    return [c["extension"]["dexfree"]["rule"] for c in cards]


EYE_DROPS = {"medicationCodeableConcept": {"text": "Dexamethasone 0.1% eye drops"}}
CONTAINED_MED = {
    "contained": [{"resourceType": "Medication", "id": "m1",
                   "code": {"coding": [{"system": RXNORM, "code": "197582", "display": "dexamethasone 4 MG Oral Tablet"}]}}],
    "medicationReference": {"reference": "#m1"},
}

SCENARIOS = [
    # (id, call kwargs, expected rules)
    ("arm B, cycle 4: warning", {"orders": (dex_order(),)}, ["dex-after-cycle-2"]),
    ("arm B, cycle 3 day 1: warning", {"orders": (dex_order(day_of(3, 1)),)}, ["dex-after-cycle-2"]),
    ("arm B, cycle 2 day 28: no warning (not a dex day: info)", {"orders": (dex_order(day_of(2, 28)),)},
     ["dex-dose-mismatch"]),
    ("arm B, cycle 2 day 22 right dose: nothing", {"orders": (dex_order(day_of(2, 22)),)}, []),
    ("arm A, cycle 4 right dose: nothing",
     {"orders": (dex_order(day_of(4, 1)),), "subjects": (research_subject(ARM_A),),
      "plans": (care_plan("icaria-arm-a"),)}, []),
    ("arm A, cycle 4, 20 mg under 75: dose info",
     {"orders": (dex_order(dose=20),), "subjects": (research_subject(ARM_A),), "plans": (care_plan("icaria-arm-a"),)},
     ["dex-dose-mismatch"]),
    ("age 74 on ICARIA: 40 mg expected", {"orders": (dex_order(day_of(2, 1), dose=40),),
                                          "patient_resource": patient("1952-08-31")}, []),
    ("age 75 on ICARIA: 20 mg expected", {"orders": (dex_order(day_of(2, 1), dose=40),),
                                          "patient_resource": patient("1951-09-01")}, ["dex-dose-mismatch"]),
    ("age 75 on ICARIA, 20 mg: nothing", {"orders": (dex_order(day_of(2, 1), dose=20),),
                                          "patient_resource": patient("1951-09-01")}, []),
    ("IKEMA day 2 is a dex day",
     {"orders": (dex_order(day_of(1, 2), dose=20),), "plans": (care_plan("ikema-arm-b"),)}, []),
    ("ICARIA day 2 is not a dex day", {"orders": (dex_order(day_of(1, 2)),)}, ["dex-dose-mismatch"]),
    ("IKEMA, 40 mg: dose info", {"orders": (dex_order(day_of(1, 8), dose=40),), "plans": (care_plan("ikema-arm-b"),)},
     ["dex-dose-mismatch"]),
    ("IKEMA arm B cycle 3: warning", {"orders": (dex_order(day_of(3, 2), dose=20),),
                                      "plans": (care_plan("ikema-arm-b"),)}, ["dex-after-cycle-2"]),
    ("eye drops never trigger", {"orders": (dex_order(medication=EYE_DROPS, route=None, dose=None),)}, []),
    ("ophthalmic route coded never triggers",
     {"orders": (dex_order(route=None, dosageInstruction=[{"route": {"coding": [
         {"system": "http://snomed.info/sct", "code": "54485002"}]}}]),)}, []),
    ("withdrawn subject: nothing", {"orders": (dex_order(),), "subjects": (research_subject(status="withdrawn"),)}, []),
    ("screening subject: nothing", {"orders": (dex_order(),), "subjects": (research_subject(status="candidate"),)}, []),
    ("actualArm overrides assignedArm",
     {"orders": (dex_order(),), "subjects": (research_subject("B", assignedArm=ARM_A),)}, ["dex-after-cycle-2"]),
    ("actualArm A overrides assignedArm B",
     {"orders": (dex_order(),), "subjects": (research_subject("A", assignedArm="B"),),
      "plans": (care_plan("icaria-arm-a"),)}, []),
    ("assignedArm alias only", {"orders": (dex_order(),),
                                "subjects": (research_subject("Dexamethasone-free", element="assignedArm"),)},
     ["dex-after-cycle-2"]),
    ("R5-style comparison group", {"orders": (dex_order(),),
                                   "subjects": (research_subject(None, actualComparisonGroup="arm-b"),)},
     ["dex-after-cycle-2"]),
    ("unknown arm text: could not verify", {"orders": (dex_order(),), "subjects": (research_subject("C"),)},
     ["cannot-verify"]),
    ("no arm: could not verify", {"orders": (dex_order(),), "subjects": (research_subject(None),)},
     ["cannot-verify"]),
    ("other study: nothing", {"orders": (dex_order(),), "studies": (research_study("NCT00000001"),)}, []),
    ("no ResearchSubject: nothing", {"orders": (dex_order(),), "subjects": (), "studies": ()}, []),
    ("enrolment not valid FHIR R4: could not verify",
     {"orders": (dex_order(),), "subjects": ({**research_subject(), "period": {"start": "20 August"}},)},
     ["cannot-verify"]),
    ("study identifier in another case: matched", {"orders": (dex_order(),),
                                                   "studies": (research_study("nct06561854"),)}, ["dex-after-cycle-2"]),
    ("medicationReference contained", {"orders": (dex_order(medication=CONTAINED_MED),)}, ["dex-after-cycle-2"]),
    ("name only", {"orders": (dex_order(medication={"medicationCodeableConcept": {"text": "DEXAMETHASONE 20MG CP"}},
                                        dose=40),)}, ["dex-after-cycle-2"]),
    ("ATC only", {"orders": (dex_order(medication={"medicationCodeableConcept": {"coding": [
        {"system": "http://www.whocc.no/atc", "code": "H02AB02"}]}}),)}, ["dex-after-cycle-2"]),
    ("not dexamethasone: nothing", {"orders": (dex_order(medication={"medicationCodeableConcept": {
        "text": "prednisone 20 mg"}}),)}, []),
    ("unknown C1D1: could not verify", {"orders": (dex_order(),), "plans": ()}, ["cannot-verify"]),
    ("C1D1 from first isatuximab administration",
     {"orders": (dex_order(),), "plans": (),
      "administrations": (administration("isatuximab", C1D1, "isa-1"),
                          administration("isatuximab", day_of(1, 8), "isa-2"))}, ["dex-after-cycle-2"]),
    ("isatuximab before enrolment ignored: cycle unknown",
     {"orders": (dex_order(),), "plans": (), "administrations": (administration("Sarclisa", "2026-06-01", "isa-0"),)},
     ["cannot-verify"]),
    ("order starts cycle 2, runs into cycle 3", {"orders": (dex_order(day_of(2, 22), days=10,
                                                                        frequency=(1, 1, "wk")),)},
     ["dex-extends-past-cycle-2"]),
    ("daily order into cycle 3: runs on and off the regimen's days",
     {"orders": (dex_order(day_of(2, 22), days=10),)}, ["dex-extends-past-cycle-2", "dex-dose-mismatch"]),
    ("order starts cycle 2, open-ended daily", {"orders": (dex_order(day_of(2, 22), days=None),)},
     ["dex-extends-past-cycle-2"]),
    ("order with refills past cycle 2",
     {"orders": (dex_order(day_of(2, 22), frequency=None, dispenseRequest={
         "expectedSupplyDuration": {"value": 7, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"},
         "numberOfRepeatsAllowed": 2}),)}, ["dex-extends-past-cycle-2"]),
    ("order ending cycle 2 day 28: no extend", {"orders": (dex_order(day_of(2, 22), days=7, frequency=(1, 1, "wk")),)},
     []),
    ("dose in tablets without strength: could not verify dose",
     {"orders": (dex_order(day_of(2, 1), dose=10, unit="tablet"),)}, ["cannot-verify"]),
    ("dose in tablets with contained strength",
     {"orders": (dex_order(day_of(2, 1), dose=10, unit="tablet", medication={
         "contained": [{"resourceType": "Medication", "id": "m4", "code": {"text": "Dexamethasone 4 mg tablet"},
                        "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264"}]},
                                        "strength": {"numerator": {"value": 4, "unit": "mg", "code": "mg"},
                                                     "denominator": {"value": 1, "unit": "tablet"}}}]}],
         "medicationReference": {"reference": "#m4"}}),)}, []),
    ("no birth date, ICARIA dose depends on age", {"orders": (dex_order(day_of(2, 1)),), "patient_resource": patient(None)},
     ["cannot-verify"]),
    ("two dex orders, one too late", {"orders": (dex_order(day_of(4, 1)), dex_order(day_of(4, 8), order_id="dex-2"))},
     ["dex-after-cycle-2", "dex-after-cycle-2"]),
    ("cancelled draft ignored", {"orders": (dex_order(status="cancelled"),)}, []),
    ("order before cycle 1: nothing", {"orders": (dex_order(date(2026, 8, 25)),)}, []),
    ("course begun before cycle 1, ending in cycle 2: nothing",
     {"orders": (dex_order(date(2026, 8, 25), days=50, frequency=(1, 1, "wk")),)}, []),
    ("course begun before cycle 1, running into cycle 3", {"orders": (dex_order(date(2026, 8, 25), days=70,
                                                                                frequency=(1, 1, "wk")),)},
     ["dex-extends-past-cycle-2"]),
    ("course begun before cycle 1, no end", {"orders": (dex_order(date(2026, 8, 25), days=None),)},
     ["dex-extends-past-cycle-2"]),
    ("arm A, course begun before cycle 1 with no end: nothing",
     {"orders": (dex_order(date(2026, 8, 25), days=None),), "subjects": (research_subject(ARM_A),),
      "plans": (care_plan("icaria-arm-a"),)}, []),
    ("single dose (bounds start = end, no frequency) off the ICARIA days: dose card",
     {"orders": (dex_order(day_of(1, 3), frequency=None),)}, ["dex-dose-mismatch"]),
    ("single dose (count 1) off the ICARIA days: dose card",
     {"orders": (dex_order(day_of(1, 3), days=None, frequency=None, authoredOn=day_of(1, 3).isoformat(),
                           dosageInstruction=[{"route": {"text": "per os"}, "timing": {"repeat": {"count": 1}},
                                               "doseAndRate": [{"doseQuantity": {"value": 40, "unit": "mg",
                                                                                 "code": "mg"}}]}]),)},
     ["dex-dose-mismatch"]),
    ("a number of doses without their spacing in cycle 2: could not verify its end",
     {"orders": (dex_order(day_of(2, 22), days=None, frequency=None, dosageInstruction=[{
         "timing": {"repeat": {"count": 4, "boundsPeriod": {"start": day_of(2, 22).isoformat()}}},
         "doseAndRate": [{"doseQuantity": {"value": 40, "unit": "mg", "code": "mg"}}]}]),)}, ["cannot-verify"]),
    ("do not give as premedication (doNotPerform): nothing",
     {"orders": (dex_order(day_of(3, 1), doNotPerform=True,
                           reasonCode=[{"text": "do not give as premedication"}]),)}, []),
    ("regimen unknown, arm B cycle 4: both regimens agree",
     {"orders": (dex_order(),), "plans": (care_plan(start=None),),
      "administrations": (administration("isatuximab", C1D1, "isa-1"),)}, ["dex-after-cycle-2"]),
]


@pytest.mark.parametrize(("kwargs", "expected"), [(s[1], s[2]) for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_scenario(client, kwargs, expected):
    assert rules(post(client, call(**kwargs))) == expected


def test_order_select_evaluates_only_the_selected_orders(client):
    late, early = dex_order(order_id="late"), dex_order(day_of(2, 1), order_id="early")
    body = call("order-select", (late,), draft_extra=(early,), selections=("MedicationRequest/early",))
    assert rules(post(client, body)) == []
    body = call("order-select", (late,), draft_extra=(early,), selections=("MedicationRequest/late",))
    assert rules(post(client, body)) == ["dex-after-cycle-2"]


def test_order_select_and_order_sign_agree(client):
    for hook in ("order-select", "order-sign"):
        assert rules(post(client, call(hook, (dex_order(),)))) == ["dex-after-cycle-2"]


def test_warning_card_explains_itself(client, knowledge):
    cards = post(client, call(orders=(dex_order(day_of(3, 1)),)))
    card = cards[0]
    assert card["indicator"] == "warning"
    assert card["summary"] == "Arm B: no dexamethasone from cycle 3 — this order is for cycle 3, day 1"
    detail = card["detail"]
    # What to do, why (arm, regimen, cycle and day, the day dexamethasone stopped), where the facts come from.
    for needed in ("remove the order", "Arm B, ICARIA", "cycle 3, which began 2026-10-27",
                   "starts 2026-10-27, cycle 3 day 1", "enrolled in arm B (study record, 2026-08-20)",
                   "cycle 1 began 2026-09-01 (treatment plan)"):
        assert needed in detail, needed
    assert len(detail) <= 500 and "ResearchSubject" not in detail and "CarePlan" not in detail
    finding = card["extension"]["dexfree"]
    assert finding == {"rule": "dex-after-cycle-2", "study": "NCT06561854", "arm": "B", "regimen": "ICARIA",
                       "cycle": 3, "cycleDay": 1, "orderDate": "2026-10-27",
                       "regimenCanonical": "https://dexfree.example.org/fhir/PlanDefinition/icaria-arm-b|1.0.0",
                       "evidence": ["CarePlan/cp-1", "MedicationRequest/dex-1", "ResearchSubject/subj-1"]}
    [remove] = card["suggestions"]
    assert remove["label"] == "Remove this dexamethasone order"
    assert remove["actions"] == [{"type": "delete", "description": "Remove the draft dexamethasone order",
                                  "resourceId": "MedicationRequest/dex-1"}]
    assert [r["code"] for r in card["overrideReasons"]] == ["premedication-isatuximab", "non-myeloma-indication",
                                                            "approved-deviation"]
    assert card["links"][0]["url"] == "https://clinicaltrials.gov/study/NCT06561854"
    assert card["links"][1]["url"] == "http://localhost/regimens/icaria-arm-b"
    assert card["source"]["url"] == "http://localhost/fhir/PlanDefinition/dex-free-arm-b-rule"
    # Cycle 3 day 1 is an isatuximab day: the premedication question is raised first, not answered.
    assert detail.startswith("**Isatuximab infusion day: this may be premedication,**")
    assert "the protocol leaves open" in detail


def test_no_premedication_note_off_infusion_days(client):
    card = post(client, call(orders=(dex_order(day_of(3, 2)),)))[0]
    assert "premedication" not in card["detail"]


def test_extends_card_offers_to_end_on_the_last_day_of_cycle_2(client):
    order = dex_order(day_of(2, 22), days=10, frequency=(1, 1, "wk"))
    card = post(client, call(orders=(order,)))[0]
    assert card["summary"] == "Arm B: this dexamethasone order runs into cycle 3, which has none — end it on 2026-10-26"
    assert card["detail"].startswith("**End this dexamethasone order on 2026-10-26,** the last day of cycle 2.")
    assert "runs until 2026-10-29, in cycle 3" in card["detail"]
    assert card["suggestions"][0]["label"] == "End the order on 2026-10-26 (last day of cycle 2)"
    [update] = card["suggestions"][0]["actions"]
    assert update["type"] == "update"
    bounds = update["resource"]["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
    assert bounds == {"start": day_of(2, 22).isoformat(), "end": day_of(2, 28).isoformat()}
    assert update["resource"]["id"] == order["id"]


def test_cannot_verify_says_what_is_missing(client):
    card = post(client, call(orders=(dex_order(),), plans=()))[0]
    assert card["indicator"] == "info"
    assert card["summary"] == "Could not check this dexamethasone order: the start of cycle 1 is not in the record"
    assert card["detail"].startswith("**Check the cycle with the study team before signing.**")
    assert "no treatment plan with a start date" in card["detail"] and "CarePlan" not in card["detail"]
    assert card["extension"]["dexfree"]["missing"] == ["cycle 1 day 1 unknown"]


def test_a_draft_too_broken_to_read_that_names_dexamethasone_is_not_ignored(client):
    broken = {"resourceType": "MedicationRequest", "id": "bad", "status": 12,
              "medicationCodeableConcept": {"text": "dexamethasone 40 mg"}}
    cards = post(client, call(orders=(), draft_extra=(broken,)))
    assert rules(cards) == ["cannot-verify"]
    assert "could not be read" in cards[0]["summary"] and "naming dexamethasone is not readable" in cards[0]["detail"]
    assert cards[0]["extension"]["dexfree"]["doubts"] == ["a draft order naming dexamethasone is not valid FHIR R4"]


def test_isatuximab_on_an_unexpected_day_raises_a_doubt(client):
    # Cycle 2 isatuximab is given on days 1 and 15; one given on cycle 2 day 8 hints at a delayed cycle.
    card = post(client, call(orders=(dex_order(),), administrations=(
        administration("isatuximab", C1D1, "isa-1"), administration("isatuximab", day_of(2, 8), "isa-9"))))[0]
    assert "**Check:** cycle 2 may have been delayed" in card["detail"]
    assert "MedicationAdministration" not in card["detail"]
    # The rules' full sentence, with its reference, stays machine-readable.
    assert any("MedicationAdministration/isa-9" in d for d in card["extension"]["dexfree"]["doubts"])


def test_dose_mismatch_names_the_expected_dose(client):
    card = post(client, call(orders=(dex_order(day_of(2, 1), dose=20),)))[0]
    assert card["indicator"] == "info"
    assert card["summary"] == ("Dexamethasone dose: ICARIA gives 40 mg at age 66 — this order gives 20 mg, "
                               "cycle 2 day 1")
    assert "days 1, 8, 15, 22 of cycle 2" in card["detail"] and "40 mg under 75, 20 mg from 75" in card["detail"]
    assert card["extension"]["dexfree"]["expectedDose"] == "40 mg"
    [change] = card["suggestions"]
    assert change["label"] == "Change the dose to 40 mg"
    [update] = change["actions"]
    assert update["type"] == "update" and update["resource"]["id"] == "dex-1"
    assert update["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 40.0, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}


def test_ikema_dose_card_says_no_age(client):
    card = post(client, call(orders=(dex_order(day_of(1, 8), dose=40),), plans=(care_plan("ikema-arm-b"),)))[0]
    assert card["summary"] == "Dexamethasone dose: IKEMA gives 20 mg — this order gives 40 mg, cycle 1 day 8"
    assert "age" not in card["detail"] and "75" not in card["detail"]


def test_patient_not_in_the_trial_gets_no_card_and_no_error(client):
    body = call(orders=(dex_order(),), subjects=(), studies=(), plans=())
    assert post(client, body) == []


def test_isatuximab_order_after_enrolment_gives_c1d1_when_nothing_was_given_yet(client):
    body = call(orders=(dex_order(day_of(3, 1)),), plans=(),
                requests=(medication_request("isatuximab 10 mg/kg", C1D1, "isa-rx"),
                          medication_request("pomalidomide 4 mg", C1D1, "pom-rx")))
    card = post(client, body)[0]
    assert card["extension"]["dexfree"]["regimen"] == "ICARIA"
    assert "cycle 1 began 2026-09-01 (first isatuximab order); ICARIA: pomalidomide ordered" in card["detail"]
    assert "MedicationRequest/isa-rx" in card["extension"]["dexfree"]["evidence"]


def test_course_begun_before_cycle_1_is_shortened_to_the_last_day_of_cycle_2(client):
    order = dex_order(date(2026, 8, 25), days=None, frequency=(1, 1, "wk"),
                      dispenseRequest={"quantity": {"value": 400, "unit": "mg", "code": "mg"},
                                       "numberOfRepeatsAllowed": 3})
    [card] = post(client, call(orders=(order,)))
    assert card["summary"] == "Arm B: this dexamethasone order runs into cycle 3, which has none — end it on 2026-10-26"
    assert "starts 2026-08-25, before cycle 1, and runs until" in card["detail"]
    assert "cycle" not in card["extension"]["dexfree"]
    [update] = card["suggestions"][0]["actions"]
    resource = update["resource"]
    assert resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {"start": "2026-08-25",
                                                                                    "end": "2026-10-26"}
    assert not {"numberOfRepeatsAllowed", "quantity"} & set(resource.get("dispenseRequest", {}))
    # The shortened order, sent back, is quiet: the suggestion ends the warning.
    assert rules(post(client, call(orders=(resource,)))) == []


def test_route_words_that_disagree_are_said(client):
    order = dex_order(day_of(3, 2), route="IV", medication={"medicationCodeableConcept": {
        "text": "dexaméthasone crème"}})
    [card] = post(client, call(orders=(order,)))
    assert card["extension"]["dexfree"]["rule"] == "dex-after-cycle-2"
    assert '**Check:** route unclear, product "crème" says local, route "IV" systemic' in card["detail"]
