"""patient-view for patients on study: the trial-status card (arm, regimen, cycle today, dexamethasone plan)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cds_service.cards import dexamethasone as dexamethasone_cards
from tests.rules.scenario import (
    BROKEN_SUBJECTS,
    call,
    care_plan,
    research_study,
    research_subject,
)
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


# --- an enrolment the record cannot read -----------------------------------------------------------------

MYELOMA = {"resourceType": "Condition", "id": "mm", "subject": {"reference": "Patient/pat-42"},
           "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                          "code": "relapse"}]},
           "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C90.02"}]}}
UNVERIFIED = "Could not check whether the patient is on NCT06561854: "
CHECK = ("**Check the patient's enrolment with the study team before ordering dexamethasone:** arm B gives "
         "none from cycle 3.")


def _with_myeloma(body):
    body["prefetch"]["conditions"]["entry"] = [{"resource": MYELOMA}]
    return body


@pytest.mark.parametrize("myeloma", [False, True], ids=["no-myeloma-condition", "myeloma"])
@pytest.mark.parametrize("change", BROKEN_SUBJECTS.values(), ids=BROKEN_SUBJECTS.keys())
def test_an_enrolment_that_is_not_valid_fhir_is_said_not_screened_nor_silent(client, change, myeloma):
    """The arm B patient's only ResearchSubject does not validate: the trial status cannot be told, and an
    eligibility card would screen a patient who may be on study. One could-not-verify card, naming what."""
    body = call("patient-view", subjects=({**research_subject(), **change},))
    [card] = view(client, _with_myeloma(body) if myeloma else body)
    assert card["summary"] == UNVERIFIED + "a trial enrolment could not be read"
    assert card["indicator"] == "info"
    assert card["detail"] == (CHECK + "\n\nCould not check: a trial enrolment could not be read.\n\n**Why:** 1 study "
                              "record of the patient is not readable: it may be the enrolment in NCT06561854.")
    assert card["extension"]["dexfree"] == {"rule": "cannot-verify", "study": "NCT06561854",
                                            "missing": ["a trial enrolment could not be read"],
                                            "evidence": ["Patient/pat-42"]}


def test_an_enrolment_whose_study_cannot_be_read_is_said_with_the_subject_as_evidence(client):
    body = call("patient-view", subjects=(research_subject(study="ResearchStudy/unknown-study"),), studies=())
    [card] = view(client, _with_myeloma(body))
    assert card["summary"] == UNVERIFIED + "the study of a trial enrolment could not be read"
    assert card["detail"] == (CHECK + "\n\nCould not check: the study of a trial enrolment could not be read.\n\n"
                              "**Why:** the study named by a trial enrolment could not be read: it may be "
                              "NCT06561854.")
    assert card["extension"]["dexfree"]["evidence"] == ["Patient/pat-42", "ResearchSubject/subj-1"]


def test_both_doubts_are_said(client):
    broken = {**research_subject(subject_id="subj-2"), **BROKEN_SUBJECTS["arm as an object"]}
    body = call("patient-view", subjects=(research_subject(study="ResearchStudy/unknown-study"), broken),
                studies=())
    [card] = view(client, body)
    assert card["extension"]["dexfree"]["missing"] == ["the study of a trial enrolment could not be read",
                                                       "a trial enrolment could not be read"]
    assert card["detail"] == (CHECK + "\n\nCould not check: the study of a trial enrolment could not be read; a "
                              "trial enrolment could not be read.\n\n**Why:** the study named by a trial "
                              "enrolment could not be read: it may be NCT06561854; 1 study record of the patient is not "
                              "readable: it may be the enrolment in NCT06561854.")


def test_without_one_stop_cycle_for_arm_b_the_card_names_none(client, monkeypatch):
    """Arm B regimens that disagree on when dexamethasone stops (a site's adaptations): no cycle is named."""
    monkeypatch.setattr(dexamethasone_cards, "_stop_cycle_b", lambda knowledge: None)
    broken = {**research_subject(), **BROKEN_SUBJECTS["arm as an object"]}
    [card] = view(client, call("patient-view", subjects=(broken,)))
    assert card["detail"].startswith("**Check the patient's enrolment with the study team before ordering "
                                     "dexamethasone.**\n\nCould not check:")


def test_a_readable_enrolment_decides_beside_a_broken_one(client):
    broken = {**research_subject(subject_id="subj-2"), **BROKEN_SUBJECTS["enrolment date in words"]}
    [card] = view(client, call("patient-view", subjects=(research_subject(), broken)))
    assert card["extension"]["dexfree"]["rule"] == "trial-status"
    assert card["summary"] == "NCT06561854 arm B, ICARIA, cycle 4 day 1: no dexamethasone since 2026-10-27"


@pytest.mark.parametrize("myeloma", [False, True], ids=["no-myeloma-condition", "myeloma"])
def test_another_patients_or_another_studys_enrolment_is_no_doubt(client, myeloma):
    """Left out on purpose (another patient's) or readable and of another trial: nothing to verify; the
    patient is screened as any patient outside the study (with myeloma) or gets no card."""
    other_patient = {**research_subject(), "subject": {"reference": "Patient/someone-else"}}
    for body in (call("patient-view", subjects=(other_patient,)),
                 call("patient-view", studies=(research_study(nct="NCT01234567"),))):
        cards = view(client, _with_myeloma(body) if myeloma else body)
        assert [c["extension"]["dexfree"]["rule"] for c in cards] == (["eligibility"] if myeloma else [])


def test_many_unreadable_enrolments_keep_the_card_short(client):
    subjects = tuple(research_subject(subject_id=f"subj-{i}", study=f"ResearchStudy/unknown-{i}") for i in range(30))
    [card] = view(client, call("patient-view", subjects=subjects, studies=()))
    assert len(card["summary"]) < 140 and len(card["detail"]) <= 500
    assert card["detail"].startswith(CHECK)
    assert len(card["extension"]["dexfree"]["evidence"]) == 31  # every subject, and the patient
