"""patient-view for patients on study: the trial-status card (arm, regimen, cycle today, dexamethasone plan)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.rules.scenario import call, care_plan, research_subject
from tests.spec import check_cds_response


def view(client, body):
    response = client.post("/cds-services/dex-free-patient-view", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())
    return response.get_json()["cards"]


def test_arm_b_after_cycle_2(client):
    [card] = view(client, call("patient-view"))
    assert card["summary"] == "NCT06561854 arm B, ICARIA, cycle 4 day 1: no dexamethasone since 2026-10-27"
    assert card["detail"].startswith("**Do not order dexamethasone:** arm B gives none since cycle 3 began on "
                                     "2026-10-27.")
    assert "From: enrolled in arm B (study record, 2026-08-20); cycle 1 began 2026-09-01 (treatment plan)." \
        in card["detail"]
    assert card["indicator"] == "info"
    assert card["extension"]["dexfree"] == {"rule": "trial-status", "study": "NCT06561854", "arm": "B",
                                            "regimen": "ICARIA", "cycle": 4, "cycleDay": 1,
                                            "evidence": ["CarePlan/cp-1", "ResearchSubject/subj-1"]}


def test_arm_b_during_cycle_2_says_until_when(client):
    start = date(2026, 10, 3)  # today (2026-11-24) is then cycle 2 day 25
    [card] = view(client, call("patient-view", plans=(care_plan(start=start),)))
    assert "cycle 2 day 25: dexamethasone until 2026-11-27, none from cycle 3" in card["summary"]


def test_arm_a_gives_the_dose_by_age_band(client):
    [card] = view(client, call("patient-view", subjects=(research_subject("dexamethasone arm"),),
                               plans=(care_plan("icaria-arm-a"),)))
    assert card["summary"] == ("NCT06561854 arm A, ICARIA, cycle 4 day 1: dexamethasone 40 mg under 75, 20 mg "
                               "from 75 on days 1, 8, 15, 22")


def test_unknown_cycle_is_said(client):
    [card] = view(client, call("patient-view", plans=()))
    assert "cycle unknown" in card["summary"]
    assert "Could not tell the cycle: no treatment plan with a start date" in card["detail"]


def test_unknown_arm_is_said(client):
    [card] = view(client, call("patient-view", subjects=(research_subject(None),)))
    assert card["summary"] == "NCT06561854: on study, arm not recorded — could not verify the dexamethasone plan"
    assert card["detail"].startswith("**Check the arm with the study team before ordering dexamethasone:**")
    assert "the study record names no arm" in card["detail"]


@pytest.mark.parametrize("status", ["withdrawn", "off-study", "follow-up"])
def test_no_status_card_after_the_study_ended_for_the_patient(client, status):
    assert view(client, call("patient-view", subjects=(research_subject(status=status),))) == []


def test_observations_missing_degrade_to_unknown_criteria_not_a_412(client):
    """A patient with myeloma, not on study; the EHR could not prefetch observations and sent no fhirServer."""
    body = call("patient-view", subjects=(), studies=(), plans=())
    body["prefetch"]["conditions"]["entry"] = [{"resource": {
        "resourceType": "Condition", "id": "mm", "subject": {"reference": "Patient/pat-42"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "relapse"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C90.02"}]}}}]
    del body["prefetch"]["observations"]
    [card] = view(client, body)
    criteria = {c["id"]: c for c in card["extension"]["dexfree"]["eligibility"]["criteria"]}
    assert criteria["I5"]["status"] == "unknown" and "observations" in criteria["I5"]["reason"]
    assert criteria["I2"]["status"] == "met"


def test_conditions_missing_is_still_a_412(client):
    body = call("patient-view")
    del body["prefetch"]["conditions"]
    response = client.post("/cds-services/dex-free-patient-view", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 412
