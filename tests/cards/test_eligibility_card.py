"""The patient-view eligibility card, called through the service as an EHR would (prefetch, fixed clock)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.cards.eligibility import summary
from cds_service.fhir.prefetch import TEMPLATES
from cds_service.rules.eligibility import assess
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.fixtures.eligibility.builders import (
    TODAY,
    baseline,
    build_record,
    condition,
    order,
    patient,
    research_study,
    research_subject,
)
from tests.spec import check_cds_response

URL = "/cds-services/dex-free-patient-view"


def call_body(resources: list[dict[str, Any]], patient_id: str = "p1") -> dict[str, Any]:
    """A patient-view call whose prefetch holds the resources, one searchset Bundle per part."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in resources:
        by_type[resource["resourceType"]].append(resource)
    prefetch: dict[str, Any] = {}
    for part, (kind, _) in TEMPLATES.items():
        if part == "patient":
            prefetch[part] = by_type[kind][0] if by_type[kind] else None
            continue
        found = by_type[kind] + ([r for t in ("ResearchStudy", "Medication") for r in by_type[t]]
                                 if part == "researchSubjects" else [])
        prefetch[part] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                          "entry": [{"resource": r} for r in found]}
    return {"hook": "patient-view", "hookInstance": "4b2f4a3e-7c1d-4f55-9a55-1b7c7e1e0001",
            "context": {"userId": "Practitioner/1", "patientId": patient_id}, "prefetch": prefetch}


def cards(client, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = client.post(URL, data=json.dumps(call_body(resources)), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    check_cds_response(body)
    return body["cards"]


@pytest.fixture
def show_all_client(config, knowledge):
    runtime = Runtime(config=replace(config, show_not_eligible=True), knowledge=knowledge, clock=lambda: FIXED_NOW)
    return create_app(runtime=runtime).test_client()


def test_may_be_eligible(client, knowledge):
    found = cards(client, baseline())
    assert len(found) == 1
    card = found[0]
    assert card["indicator"] == "info"
    assert card["summary"] == "May be eligible for NCT06561854 (ICARIA or IKEMA) — 6 criteria to check"
    assert card["source"]["topic"]["code"] == "eligibility"
    assert card["source"]["label"].startswith("Dex-Free CDS")
    assert card["links"] == [{"label": "NCT06561854 on ClinicalTrials.gov",
                              "url": "https://clinicaltrials.gov/study/NCT06561854", "type": "absolute"}]
    dexfree = card["extension"]["dexfree"]
    assert (dexfree["rule"], dexfree["study"]) == ("eligibility", "NCT06561854")
    eligibility = dexfree["eligibility"]
    assert eligibility["overall"] == "needs-review" and eligibility["regimens"] == ["ICARIA", "IKEMA"]
    assert [c["id"] for c in eligibility["criteria"]][:3] == ["I1", "I2", "I3"]
    i5 = next(c for c in eligibility["criteria"] if c["id"] == "I5")
    assert i5 == {"id": "I5", "status": "met", "reason": "ECOG 1 on 2026-11-14", "evidence": ["Observation/p1-ecog"]}
    assert "Condition/p1-mm" in dexfree["evidence"]


def test_detail_gives_the_verdict_then_the_criteria_to_check_by_name_then_a_count(client):
    detail = cards(client, baseline())[0]["detail"]
    assert detail.startswith("**May be eligible** for ICARIA or IKEMA: nothing in the record excludes the "
                             "patient; 6 criteria to check.")
    assert "\n- Prior toxicities resolved (inclusion 6): resolution of prior-therapy toxicities" in detail
    assert "\n- Signed informed consent (inclusion 7), Planned transplant (exclusion 5): to confirm" in detail
    assert "Fine on 17 of 23 criteria: inclusions fulfilled, exclusions absent." in detail
    assert "a line being 2 cycles or more" in detail
    assert "| I5 |" not in detail and "I6, I7" not in detail and len(detail) <= 1200


def test_criteria_the_record_shows_come_before_those_it_is_silent_on(client):
    copd = [*baseline(), condition("J44.9", rid="copd")]
    detail = cards(client, copd)[0]["detail"]
    assert detail.index("Uncontrolled COPD (exclusion 10)") < detail.index("Prior toxicities resolved")
    assert "J44.9" not in detail


def test_regimens_still_possible_are_named(client):
    prior_pomalidomide = order("pomalidomide", rid="pom", start="2024-01-02", end="2024-06-01")
    card = cards(client, [*baseline(), prior_pomalidomide])[0]
    assert card["summary"].startswith("May be eligible for NCT06561854 (IKEMA) —")
    assert card["extension"]["dexfree"]["eligibility"]["regimens"] == ["IKEMA"]


def test_decisively_not_eligible_gets_no_card_by_default(client):
    assert cards(client, [*baseline(), condition("B20", rid="hiv")]) == []


def test_not_eligible_card_when_configured(show_all_client):
    found = cards(show_all_client, [*baseline(), condition("B20", rid="hiv")])
    assert [c["summary"] for c in found] == ["Not eligible for NCT06561854 — excluded by HIV or hepatitis C"]
    detail = found[0]["detail"]
    assert detail.startswith("**Not eligible:** 1 criterion excludes the patient.\n\n**Excluded by:**\n"
                             "- HIV or hepatitis C (exclusion 13): recorded")
    assert "B20" not in detail
    assert found[0]["extension"]["dexfree"]["eligibility"]["overall"] == "not-eligible"


def test_no_myeloma_no_card(client, show_all_client):
    resources = [patient(), condition("I10", rid="htn")]
    assert cards(client, resources) == [] and cards(show_all_client, resources) == []


def test_patient_on_study_gets_no_eligibility_card(client):
    on_study = [*baseline(), research_study("ours", "NCT06561854"),
                research_subject("ResearchStudy/ours", rid="rs", status="on-study", arm="dexamethasone-free arm")]
    # The trial-status card, and it alone: an empty answer (which `all()` over it would have passed) is wrong.
    found = cards(client, on_study)
    assert [(c["extension"]["dexfree"]["rule"], c["extension"]["dexfree"]["arm"]) for c in found] == [
        ("trial-status", "B")]


def test_patient_whose_study_ended_gets_no_card(client):
    withdrawn = [*baseline(), research_study("ours", "NCT06561854"),
                 research_subject("ResearchStudy/ours", rid="rs", status="withdrawn")]
    assert cards(client, withdrawn) == []


def test_patient_in_screening_is_screened(client):
    screening = [*baseline(), research_study("ours", "NCT06561854"),
                 research_subject("ResearchStudy/ours", rid="rs", status="candidate")]
    card = cards(client, screening)[0]
    assert "Screening for NCT06561854 is recorded, status candidate." in card["detail"]
    criteria = {c["id"]: c["status"] for c in card["extension"]["dexfree"]["eligibility"]["criteria"]}
    assert criteria["E15"] == "met"  # not in another study: being screened for this one does not count


def test_summaries_are_short_and_count_right(knowledge):
    assessment = assess(build_record(baseline()), knowledge, TODAY)
    one_left = replace(assessment, criteria=tuple(
        replace(c, status="met") if c.id != "I7" else c for c in assessment.criteria))
    assert summary(one_left, knowledge).endswith("— 1 criterion to check")
    everything = replace(assessment, overall="eligible",
                         criteria=tuple(replace(c, status="met") for c in assessment.criteria))
    assert summary(everything, knowledge).startswith("Eligible for NCT06561854 (ICARIA or IKEMA)")
    deceased = replace(assessment, overall="not-eligible", notes=("the patient is deceased",),
                       criteria=one_left.criteria)
    assert summary(deceased, knowledge) == "Not eligible for NCT06561854: the patient is deceased"
    failing = replace(assessment, overall="not-eligible", criteria=tuple(
        replace(c, status="not-met") for c in assessment.criteria))
    assert summary(failing, knowledge) == ("Not eligible for NCT06561854 — fails Age 18 or older, Myeloma in "
                                           "relapse, 1 to 3 prior lines and 20 more")
    mixed = replace(assessment, overall="not-eligible", criteria=tuple(
        replace(c, status="not-met") if c.id in ("I5", "E4", "E13") else c for c in assessment.criteria))
    assert summary(mixed, knowledge) == ("Not eligible for NCT06561854 — fails ECOG performance status 0–2; "
                                         "excluded by Allogeneic transplant, HIV or hepatitis C")
    for text in (summary(a, knowledge) for a in (assessment, one_left, everything, deceased, failing)):
        assert len(text) < 140
