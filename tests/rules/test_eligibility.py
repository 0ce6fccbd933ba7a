"""The overall verdict, the registry of criteria, and real-world FHIR shapes read by the criteria."""

from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path

import pytest

from cds_service.rules.criteria import CRITERIA, CRITERION_IDS, CriterionResult
from cds_service.rules.eligibility import assess, has_myeloma, overall
from cds_service.rules.facts import Facts
from tests.conftest import SHARED
from tests.fixtures.eligibility.builders import (
    TODAY,
    baseline,
    build_record,
    condition,
    given,
    order,
    patient,
)

EXAMPLES = SHARED / "fhir-examples"
PACKAGE = Path(__file__).resolve().parents[2] / "cds_service"


def results(**statuses: str) -> tuple[CriterionResult, ...]:
    return tuple(CriterionResult(c, statuses.get(c, "met"), "r") for c in CRITERION_IDS)


@pytest.mark.parametrize(("statuses", "regimens", "expected"), [
    ({}, ("ICARIA", "IKEMA"), "eligible"),
    ({"I7": "unknown"}, ("ICARIA",), "needs-review"),
    ({"I7": "unknown", "E4": "not-met"}, ("ICARIA", "IKEMA"), "not-eligible"),
    ({"I5": "not-met"}, ("ICARIA", "IKEMA"), "not-eligible"),
    ({}, (), "not-eligible"),  # no regimen remains
])
def test_overall(statuses, regimens, expected):
    assert overall(results(**statuses), regimens) == expected


def test_overall_of_a_deceased_patient_is_not_eligible():
    assert overall(results(), ("ICARIA",), deceased=True) == "not-eligible"


def test_assessment_of_the_baseline_candidate(knowledge):
    assessment = assess(build_record(baseline()), knowledge, TODAY)
    assert assessment.overall == "needs-review"
    assert assessment.regimens == ("ICARIA", "IKEMA")
    assert assessment.unknown == ("I6", "I7", "E1", "E5", "E9", "E16")
    assert assessment.failed == ()
    shape = assessment.as_json()
    assert set(shape) == {"overall", "regimens", "criteria", "notes"}
    assert [c["id"] for c in shape["criteria"]] == list(CRITERION_IDS)
    assert set(shape["criteria"][0]) == {"id", "status", "reason", "evidence"}


def test_deceased_patient(knowledge):
    resources = [r for r in baseline() if r["resourceType"] != "Patient"]
    resources.append(patient(deceasedDateTime="2026-10-01"))
    assessment = assess(build_record(resources), knowledge, TODAY)
    assert assessment.overall == "not-eligible" and assessment.notes == ("the patient is deceased",)


def test_no_regimen_left_is_not_eligible(knowledge):
    record = build_record([*baseline(), given("carfilzomib", rid="k", when="2023-01-05"),
                           order("pomalidomide", rid="p", start="2024-01-05", end="2024-05-01")])
    assessment = assess(record, knowledge, TODAY)
    assert assessment.regimens == () and assessment.overall == "not-eligible"
    assert assessment.criterion("E3").status == "not-met"


def test_myeloma_is_recognised_but_not_entered_in_error_or_refuted(knowledge):
    assert has_myeloma(build_record(baseline()), knowledge)
    for status in ("entered-in-error", "refuted"):
        record = build_record([patient(), condition("C90.02", rid="mm", verification=status)])
        assert not has_myeloma(record, knowledge)
    assert not has_myeloma(build_record([patient(), condition("I10", rid="htn")]), knowledge)


def test_criteria_are_those_of_the_study_in_protocol_order(knowledge):
    numbered = [c.id for c in knowledge.study.criteria if "-" not in c.id]
    assert list(CRITERION_IDS) == numbered
    for criterion_id, function in CRITERIA:
        assert function.__doc__.startswith(f"{criterion_id}:"), criterion_id


def test_assessment_is_a_pure_function_of_the_record(knowledge):
    record = build_record(baseline())
    before = repr(record)
    first, second = assess(record, knowledge, TODAY), assess(record, knowledge, TODAY)
    assert first == second and repr(record) == before


def _valueset_codes(knowledge) -> set[str]:
    codes = set()
    for path in knowledge.artifacts.folder.glob("terminology/ValueSet-*.json"):
        for include in json.loads(path.read_text())["compose"].get("include", []):
            codes |= {c["code"] for c in include.get("concept", [])}
            codes |= {f["value"] for f in include.get("filter", [])}
    return {c for c in codes if not c.startswith("drug-") and not c.startswith("route-")}


@pytest.mark.parametrize("module", ["rules/criteria.py", "rules/facts.py", "rules/lines.py",
                                    "rules/eligibility.py", "cards/eligibility.py", "screen/relevance.py",
                                    "screen/run.py"])
def test_no_clinical_code_is_spelled_in_the_eligibility_code(knowledge, module):
    codes = _valueset_codes(knowledge)
    tree = ast.parse((PACKAGE / module).read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & codes


# --- real-world shapes (../shared/fhir-examples) -------------------------------------------------


def example(name: str) -> dict:
    resource = json.loads((EXAMPLES / name).read_text())
    if "subject" in resource:
        resource["subject"] = {"reference": "Patient/p1"}
    return resource


def criteria_of(knowledge, resources, today=TODAY):
    facts = Facts(build_record(resources), knowledge, today)
    return {cid: fn(facts) for cid, fn in CRITERIA}


def test_mcode_ecog_observation(knowledge):
    found = criteria_of(knowledge, [patient(), example("mcode-stu1-Observation-ECOGPerformanceStatusExample01.json")],
                        today=date(2019, 4, 20))
    assert found["I5"].status == "met" and "ECOG 0 on 2019-04-01" in found["I5"].reason
    assert found["I5"].evidence == ("Observation/mCODEECOGPerformanceStatusExample01",)


def test_mcode_disease_status_in_snomed_is_not_a_recognised_response(knowledge):
    found = criteria_of(knowledge, [patient(), example("mcode-stu1-Observation-CancerDiseaseStatusExample01.json")])
    assert found["I4"].status == "unknown" and "without a recognised code" in found["I4"].reason


def test_mcode_primary_cancer_in_snomed_raises_review_of_other_malignancy(knowledge):
    cancer = example("mcode-stu1-Condition-PrimaryCancerConditionExample01.json")
    found = criteria_of(knowledge, [*baseline(), cancer])
    assert found["E6"].status == "unknown" and "254637007 not coded in ICD-10" in found["E6"].reason
    assert not has_myeloma(build_record([patient(), cancer]), knowledge)


def test_us_core_conditions_matter_to_no_criterion(knowledge):
    conditions = [example("uscore-Condition-encounter-diagnosis-example1.json"),
                  example("uscore-Condition-duodenal-ulcer.json")]
    with_them, without = criteria_of(knowledge, [*baseline(), *conditions]), criteria_of(knowledge, baseline())
    assert {c: r.status for c, r in with_them.items()} == {c: r.status for c, r in without.items()}


def test_us_core_pregnancy_status_is_pointed_out_under_contraindications(knowledge):
    found = criteria_of(knowledge, [*baseline(), example("uscore-Observation-pregnancy-status.json")])
    assert found["E1"].status == "unknown" and found["E1"].evidence == ("Observation/pregnancy-status",)


def test_real_patients_and_research_subjects_parse(knowledge):
    epic = json.loads((EXAMPLES / "epic-Patient-Camila-Lopez.json").read_text())
    epic["id"] = "p1"
    subject = example("r4core-ResearchSubject-example.json")
    subject["individual"] = {"reference": "Patient/p1"}
    resources = [*[r for r in baseline() if r["resourceType"] != "Patient"], epic, subject]
    found = criteria_of(knowledge, resources)
    assert found["I1"].status == "met"
    # The R4 example is a candidate (screening) of a study the record cannot name: not a participation.
    assert found["E15"].status == "met"
