"""The eligibility criteria's corners the mutation run found untested (rules/criteria.py).

The reason is what the clinician reads in the EHR: every case of tests/rules/test_eligibility_criteria.py
gives its whole reason here, word for word, so a changed word, number or date in it is seen. Built like
that file: the baseline candidate (tests/fixtures/eligibility/builders.py), one thing changed at a time;
the suite's today is 2026-11-24.
"""

from __future__ import annotations

import time
from datetime import date

import pytest

from cds_service.rules.criteria import _years_before, possible_regimens
from cds_service.rules.facts import Facts
from tests.fixtures.eligibility.builders import (
    ICD10,
    LOINC,
    SNOMED,
    TODAY,
    build_record,
    condition,
    day,
    ecog,
    given,
    line,
    observation,
    order,
    procedure,
    research_study,
    research_subject,
    response,
    statement,
)
from tests.rules.test_eligibility_criteria import (
    ANOTHER_LINE_LATER,
    CASES,
    NO_ECOG,
    NO_RESPONSE,
    OPTIONS,
    base,
    evaluate,
    kind,
)

REASONS = {
    ('I1', 'adult'): 'age 68 (18 or older)',
    ('I1', 'minor'): 'age 16, under 18',
    ('I1', 'year-only birth, certain'): 'age 67–68 (18 or older)',
    ('I1', 'year-only birth on the edge'): 'age 17–18 (birth date too partial) — needs review',
    ('I1', 'no birth date'): 'birth date not recorded — needs review',
    ('I1', 'no Patient'): 'no Patient resource — needs review',
    ('I2', 'C90.02'): 'multiple myeloma in relapse (C90.02)',
    ('I2', 'SNOMED myeloma with status relapse'): 'multiple myeloma in relapse (109989006, status relapse)',
    ('I2', 'myeloma without relapse'):
        'multiple myeloma recorded (C90.00), no relapse documented — needs review',
    ('I2', 'relapse code, status remission'):
        'coded in relapse (C90.02) but its status says remission — needs review',
    ('I2', 'relapse unconfirmed'): 'relapse recorded but not confirmed (C90.02) — needs review',
    ('I2', 'relapse entered in error'): 'no multiple myeloma condition recorded',
    ('I3', 'one line'):
        '1 prior line of 2+ cycles: bortezomib + lenalidomide + dexamethasone from 2025-08-11 (168 days)',
    ('I3', 'two lines'):
        '2 prior lines of 2+ cycles: bortezomib + lenalidomide + dexamethasone from 2025-08-11 (168 days); '
        'daratumumab + dexamethasone from 2026-03-19 (112 days)',
    ('I3', 'four lines'):
        '4 prior lines of 2+ cycles, more than 3: carfilzomib + dexamethasone from 2022-10-16 (112 days); '
        'pomalidomide + dexamethasone from 2024-02-28 (112 days); bortezomib + lenalidomide + dexamethasone '
        'from 2025-08-11 (168 days); daratumumab + dexamethasone from 2026-03-19 (112 days)',
    ('I3', 'no treatment in the record'):
        'no anti-myeloma treatment in the record — prior lines needs review',
    ('I3', 'one cycle only'):
        'no regimen of 2+ cycles found (bortezomib + dexamethasone from 2026-01-28 (28 days)) — needs '
        'review',
    ('I3', 'end not known'):
        '0–1 prior lines (lenalidomide from 2026-01-28 (1 days), end not known) — needs review',
    ('I4', 'PR during the last regimen'):
        'Partial response or better (C18058) on 2025-10-20, during bortezomib + lenalidomide + '
        'dexamethasone (from 2025-08-11)',
    ('I4', 'no response recorded'): 'no response assessment recorded — needs review',
    ('I4', 'PR before the last regimen'):
        'Partial response or better (C18058) on 2025-10-20, before the last regimen (daratumumab + '
        'dexamethasone) — needs review',
    ('I4', 'progressive disease only'):
        'latest coded response: Less than partial response (C35571) on 2026-08-16; best response to the '
        'prior regimen — needs review',
    ('I4', 'response as text only'):
        'response recorded without a recognised code (2026-08-16) — needs review',
    ('I4', 'PR but no treatment in the record'):
        'Partial response or better (C18058) on 2025-10-20, but the prior regimen is not in the record — '
        'needs review',
    ('I4', 'mCODE STU1 code 88040-1'):
        'Partial response or better (C4870) on 2025-10-20, during bortezomib + lenalidomide + dexamethasone '
        '(from 2025-08-11)',
    ('I5', 'ECOG 1'): 'ECOG 1 on 2026-11-14',
    ('I5', 'ECOG as LOINC answer'): 'ECOG 2 on 2026-11-19',
    ('I5', 'ECOG 3'): 'ECOG 3 on 2026-11-14 (0–2 required)',
    ('I5', 'ECOG too old'): 'latest ECOG 1 on 2026-07-27 is older than 90 days — needs review',
    ('I5', 'no ECOG'): 'no ECOG performance status recorded — needs review',
    ('I5', 'latest wins'): 'ECOG 1 on 2026-11-22',
    ('I5', 'two scores the same day'): 'ECOG 1 and 3 both recorded on 2026-11-21 — needs review',
    ('I5', 'preliminary only'): 'no ECOG performance status recorded — needs review',
    ('I6', 'always review'): 'resolution of prior-therapy toxicities (e.g. neuropathy) — needs review',
    ('I7', 'always review'): 'signed informed consent — needs review',
    ('E1', 'review'): 'contraindications to the study drugs — needs review',
    ('E1', 'pregnancy pointed out'): 'pregnancy recorded — contraindications to the study drugs needs review',
    ('E2', 'none given'): 'no anti-CD38 antibody in the medication history',
    ('E2', 'daratumumab given'):
        'daratumumab given 2026-03-19 to 2026-07-08: exposure is not refractoriness — needs review',
    ('E2', 'isatuximab given'):
        'isatuximab given 2024-12-24 to 2024-12-24: exposure is not refractoriness — needs review',
    ('E2', 'no treatment in the record'):
        'no anti-myeloma treatment in the record — anti-CD38 exposure needs review',
    ('E3', 'both possible'): 'no prior carfilzomib or pomalidomide: ICARIA or IKEMA possible',
    ('E3', 'prior pomalidomide'):
        'prior pomalidomide given 2024-06-07 to 2024-09-15 rules out ICARIA; IKEMA remains',
    ('E3', 'prior carfilzomib'):
        'prior carfilzomib given 2024-06-07 to 2024-06-07 rules out IKEMA; ICARIA remains',
    ('E3', 'both ruled out'):
        'prior pomalidomide given 2023-08-12 to 2023-11-20 rules out ICARIA; prior carfilzomib given '
        '2024-06-07 to 2024-06-07 rules out IKEMA',
    ('E3', 'no treatment in the record'):
        'no anti-myeloma treatment in the record — prior carfilzomib or pomalidomide needs review',
    ('E4', 'none'): 'no allogeneic transplant recorded',
    ('E4', 'allogeneic procedure'): 'allogeneic transplant (30243Y3, 2021-06-03)',
    ('E4', 'allogeneic not done'): 'no allogeneic transplant recorded',
    ('E4', 'transplant status code'): 'transplant recorded (Z94.84) without saying allogeneic — needs review',
    ('E4', 'HSCT procedure, type not said'):
        'transplant recorded (234336002) without saying allogeneic — needs review',
    ('E5', 'review'): 'planned transplant — needs review',
    ('E5', 'transplant in preparation'): 'transplant in preparation (234336002)',
    ('E6', 'none'): 'no other malignancy recorded',
    ('E6', 'breast cancer a year ago'):
        'other malignancy within 3 years: C50.911 ended 2026-01-28 (unless the investigator considers it '
        'cured)',
    ('E6', 'ended five years ago'): 'other malignancy more than 3 years ago: C61 ended 2021-09-11',
    ('E6', 'active, old onset'):
        'other malignancy within 3 years: C61 active (onset 2012-05-01) (unless the investigator considers '
        'it cured)',
    ('E6', 'no date'): 'other malignancy: C61 without a precise date — needs review',
    ('E6', 'year straddling the cutoff'):
        'other malignancy: C61 resolved, end not recorded (onset 2023): not known whether within 3 years — '
        'needs review',
    ('E6', 'year clearly old'):
        'other malignancy more than 3 years ago: C61 resolved, end not recorded (onset 2019)',
    ('E6', 'skin carcinoma is an exception'): 'no other malignancy recorded',
    ('E6', 'unconfirmed'): 'unconfirmed other malignancy (C50.911 active (onset 2026-08-16)) — needs review',
    ('E7', 'none'): 'no meningeal involvement recorded',
    ('E7', 'meninges'): 'meningeal involvement recorded (C79.32)',
    ('E7', 'meninges with another cancer'):
        'meningeal neoplasm recorded (C79.32), not necessarily myeloma — needs review',
    ('E8', 'none'): 'no plasma cell leukaemia, Waldenström, POEMS or amyloidosis recorded',
    ('E8', 'AL amyloidosis'): 'recorded: AL amyloidosis (E85.81)',
    ('E8', 'Waldenström'): 'recorded: Waldenström macroglobulinaemia (C88.0)',
    ('E8', 'plasma cell leukaemia'): 'recorded: Plasma cell leukaemia (C90.10)',
    ('E8', 'POEMS'): 'recorded: POEMS syndrome (79268002)',
    ('E8', 'unconfirmed amyloidosis'): 'unconfirmed: AL amyloidosis (E85.81) — needs review',
    ('E9', 'review'): "concurrent conditions (investigator's judgement) — needs review",
    ('E10', 'none'): 'no COPD recorded',
    ('E10', 'COPD recorded'):
        'Chronic obstructive pulmonary disease recorded (J44.9) — whether it is uncontrolled needs review',
    ('E10', 'COPD inactive'): 'no COPD recorded',
    ('E11', 'none'): 'no significant cardiac disease recorded',
    ('E11', 'heart failure'):
        'Clinically significant cardiac disease recorded (I50.9) — clinical significance needs review',
    ('E12', 'none'): 'no hepatitis B recorded',
    ('E12', 'chronic hepatitis B'): 'hepatitis B recorded (B18.1) — PCR needs review',
    ('E13', 'none'): 'no HIV or hepatitis C recorded',
    ('E13', 'HIV'): 'recorded: B20',
    ('E13', 'HIV status code without clinical status'): 'recorded: Z21',
    ('E13', 'hepatitis C'): 'recorded: B18.2',
    ('E13', 'hepatitis C resolved'): 'B18.2 recorded as unconfirmed or resolved — serology needs review',
    ('E14', 'none'): 'no lactation recorded',
    ('E14', 'male'): 'not applicable (male)',
    ('E14', 'lactation condition'): 'lactation recorded',
    ('E14', 'breastfeeding status'): 'lactation recorded (breastfeeding status 2026-11-19)',
    ('E14', 'breastfeeding status, other value'):
        'breastfeeding status recorded on 2026-11-19 with an unrecognised value — needs review',
    ('E14', 'lactation without clinical status'):
        'lactation recorded (Z39.1) without an active status — needs review',
    ('E14', 'lactation resolved'): 'no lactation recorded',
    ('E15', 'none'): 'no other interventional trial recorded',
    ('E15', 'on another interventional trial'): 'on study in NCT09000001 (interventional)',
    ('E15', 'phase 3 trial'): 'on study in NCT09000001 (interventional)',
    ('E15', 'observational study'): 'no other interventional trial recorded',
    ('E15', 'type not recorded'): 'on study in NCT09000003; whether interventional — needs review',
    ('E15', 'study not in the record'):
        'on study in ResearchStudy/missing (study not identified); whether interventional — needs review',
    ('E15', 'only screening elsewhere'): 'no other interventional trial recorded',
    ('E15', 'this study is not another'): 'no other interventional trial recorded',
    ('E16', 'review'): 'ability to give written informed consent — needs review',
}


def test_every_case_has_its_reason_written_here():
    assert set(REASONS) == {(c[0], c[1]) for c in CASES}


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c[0]}-{c[1]}") for c in CASES])
def test_the_whole_reason(knowledge, case):
    criterion, name, resources, *_ = case
    assert evaluate(knowledge, resources, criterion).reason == REASONS[criterion, name]


def _other_study(**study):
    return [{"resourceType": "ResearchStudy", "id": "s2", "status": "active",
             "identifier": [{"system": "http://clinicaltrials.gov", "value": "NCT09000001"}], **study},
            research_subject("ResearchStudy/s2", rid="rs")]


@pytest.mark.parametrize(("study", "status"), [
    ({"category": [{"coding": [{"system": "urn:oid:1.2.3", "code": "T1", "display": "Interventional study"}]}]},
     "not-met"),
    ({"category": [{"coding": [{"system": "urn:oid:1.2.3", "code": "OBS", "display": "Observational"}]}]}, "met"),
], ids=["coded-interventional", "coded-observational"])
def test_the_other_studys_type_from_a_codings_display(knowledge, study, status):
    assert evaluate(knowledge, base(*_other_study(**study)), "E15").status == status


def test_two_anti_cd38_antibodies_are_both_named(knowledge):
    resources = base(*ANOTHER_LINE_LATER, given("isatuximab", rid="isa", when=day(700)))
    assert evaluate(knowledge, resources, "E2").reason == (
        "daratumumab and isatuximab given 2024-12-24 to 2026-07-08: exposure is not refractoriness — needs review")


def test_a_study_named_by_nothing_but_its_type(knowledge):
    subject = research_subject("ResearchStudy/s2", rid="rs")
    subject["study"] = {"type": "ResearchStudy"}
    assert evaluate(knowledge, base(subject), "E15").reason == (
        "on study in a study (study not identified); whether interventional — needs review")


def test_every_regimen_is_possible_when_the_medication_history_cannot_be_read(knowledge):
    absent = {p: "not in the export" for p in ("medicationRequests", "medicationAdministrations",
                                               "medicationStatements")}
    facts = Facts(build_record(base(given("carfilzomib", rid="k", when=day(900))), missing=absent), knowledge,
                  TODAY, OPTIONS)
    assert possible_regimens(facts) == ("ICARIA", "IKEMA")


@pytest.mark.parametrize(("clinical", "reason"), [
    ("active", "pregnancy recorded — contraindications to the study drugs needs review"),
    ("resolved", "contraindications to the study drugs — needs review"),
], ids=["active", "resolved"])
def test_a_pregnancy_condition_is_pointed_out_while_active(knowledge, clinical, reason):
    result = evaluate(knowledge, base(condition("Z33.1", rid="preg", clinical=clinical)), "E1")
    assert (result.status, result.reason) == ("unknown", reason)
    assert result.evidence == (("Condition/preg",) if clinical == "active" else ())


def test_the_response_is_dated_in_the_patients_day(knowledge):
    """23:30 UTC on 19 October 2025 is 20 October in Paris."""
    late = response("C18058", rid="r-late", when="2025-10-19T23:30:00Z")
    result = evaluate(knowledge, base(late, drop=NO_RESPONSE), "I4")
    assert result.reason.startswith("Partial response or better (C18058) on 2025-10-20, during "), result.reason


def test_a_transplant_in_preparation_is_the_evidence(knowledge):
    planned = procedure("234336002", SNOMED, rid="hsct", when=None, status="preparation")
    assert evaluate(knowledge, base(planned), "E5").evidence == ("Procedure/hsct",)


GAP = "not in the data: {} (not in the export) — needs review"


@pytest.mark.parametrize(("part", "criterion"), [
    *(("conditions", c) for c in ("I2", "E4", "E6", "E7", "E8", "E10", "E11", "E12", "E13", "E14")),
    *(("observations", c) for c in ("I4", "I5", "E14")),
    ("procedures", "E4"), ("researchSubjects", "E15"),
])
def test_a_criterion_whose_part_is_missing_from_the_data_says_which(knowledge, part, criterion):
    result = evaluate(knowledge, base(), criterion, missing={part: "not in the export"})
    assert (result.id, result.status, result.reason, result.evidence) == (criterion, "unknown", GAP.format(part), ())


def test_no_patient_in_the_data(knowledge):
    result = evaluate(knowledge, base(drop=kind("Patient")), "I1", missing={"patient": "not in the export"})
    assert (result.id, result.status, result.reason) == ("I1", "unknown", GAP.format("patient"))


@pytest.mark.parametrize("criterion", ["I3", "E2", "E3"])
def test_no_medication_history_in_the_data(knowledge, criterion):
    absent = {p: "not in the export" for p in ("medicationRequests", "medicationAdministrations",
                                               "medicationStatements")}
    result = evaluate(knowledge, base(), criterion, missing=absent)
    assert (result.id, result.status, result.reason) == (criterion, "unknown", "not in the data: medicationRequests (not in the export); "
                                              "medicationAdministrations (not in the export); medicationStatements "
                                              "(not in the export) — needs review")


@pytest.mark.parametrize(("resources", "status", "reason", "evidence"), [
    ((condition("C79.3", ICD10, rid="cns"),), "unknown", "secondary neoplasm of the brain or nervous system "
     "recorded (C79.3), not saying meninges — needs review", ("Condition/cns",)),
    ((condition("C79.32", rid="men", verification="provisional"),), "unknown",
     "meningeal neoplasm recorded (C79.32), not necessarily myeloma — needs review", ("Condition/men",)),
    ((condition("C79.32", rid="men"), condition("C50.911", rid="bc", onset=day(2000))), "unknown",
     "meningeal neoplasm recorded (C79.32), not necessarily myeloma — needs review", ("Condition/men",)),
    ((condition("C79.32", rid="men"),), "not-met", "meningeal involvement recorded (C79.32)", ("Condition/men",)),
], ids=["who-brain-or-meninges", "meninges-unconfirmed", "meninges-and-another-cancer", "meninges"])
def test_e7_meningeal_involvement(knowledge, resources, status, reason, evidence):
    result = evaluate(knowledge, base(*resources), "E7")
    assert (result.id, result.status, result.reason, result.evidence) == ("E7", status, reason, evidence)


# The evidence of each case: the references themselves, or (how many, the first, the last) when longer.
EVIDENCE = {
    ('I1', 'adult'): ('Patient/p1',),
    ('I1', 'minor'): ('Patient/p1',),
    ('I1', 'year-only birth, certain'): ('Patient/p1',),
    ('I1', 'year-only birth on the edge'): ('Patient/p1',),
    ('I1', 'no birth date'): (),
    ('I1', 'no Patient'): (),
    ('I2', 'C90.02'): ('Condition/p1-mm',),
    ('I2', 'SNOMED myeloma with status relapse'): ('Condition/mm',),
    ('I2', 'myeloma without relapse'): ('Condition/mm',),
    ('I2', 'relapse code, status remission'): ('Condition/mm',),
    ('I2', 'relapse unconfirmed'): ('Condition/mm',),
    ('I2', 'relapse entered in error'): (),
    ('I3', 'one line'):
        (18, 'MedicationRequest/p1-vrd-bortezomib-1', 'MedicationRequest/p1-vrd-lenalidomide-6'),
    ('I3', 'two lines'):
        (26, 'MedicationRequest/p1-vrd-bortezomib-1', 'MedicationRequest/dara-dexamethasone-4'),
    ('I3', 'four lines'): (42, 'MedicationRequest/k-carfilzomib-1', 'MedicationRequest/dara-dexamethasone-4'),
    ('I3', 'no treatment in the record'): (),
    ('I3', 'one cycle only'): ('MedicationRequest/vd-bortezomib-1', 'MedicationRequest/vd-dexamethasone-1'),
    ('I3', 'end not known'): ('MedicationStatement/len',),
    ('I4', 'PR during the last regimen'):
        ('Observation/p1-response', 'MedicationRequest/p1-vrd-bortezomib-1'),
    ('I4', 'no response recorded'): (),
    ('I4', 'PR before the last regimen'): ('Observation/p1-response',),
    ('I4', 'progressive disease only'): ('Observation/response-1',),
    ('I4', 'response as text only'): ('Observation/r',),
    ('I4', 'PR but no treatment in the record'): ('Observation/p1-response',),
    ('I4', 'mCODE STU1 code 88040-1'): ('Observation/response-1', 'MedicationRequest/p1-vrd-bortezomib-1'),
    ('I5', 'ECOG 1'): ('Observation/p1-ecog',),
    ('I5', 'ECOG as LOINC answer'): ('Observation/e',),
    ('I5', 'ECOG 3'): ('Observation/e',),
    ('I5', 'ECOG too old'): ('Observation/e',),
    ('I5', 'no ECOG'): (),
    ('I5', 'latest wins'): ('Observation/new',),
    ('I5', 'two scores the same day'): ('Observation/a', 'Observation/b'),
    ('I5', 'preliminary only'): (),
    ('I6', 'always review'): (),
    ('I7', 'always review'): (),
    ('E1', 'review'): (),
    ('E1', 'pregnancy pointed out'): ('Observation/preg',),
    ('E2', 'none given'): (),
    ('E2', 'daratumumab given'):
        (4, 'MedicationRequest/dara-daratumumab-1', 'MedicationRequest/dara-daratumumab-4'),
    ('E2', 'isatuximab given'): ('MedicationAdministration/isa',),
    ('E2', 'no treatment in the record'): (),
    ('E3', 'both possible'): (),
    ('E3', 'prior pomalidomide'): ('MedicationRequest/pom',),
    ('E3', 'prior carfilzomib'): ('MedicationAdministration/k',),
    ('E3', 'both ruled out'): ('MedicationRequest/pom', 'MedicationAdministration/k'),
    ('E3', 'no treatment in the record'): (),
    ('E4', 'none'): (),
    ('E4', 'allogeneic procedure'): ('Procedure/allo',),
    ('E4', 'allogeneic not done'): (),
    ('E4', 'transplant status code'): ('Condition/z',),
    ('E4', 'HSCT procedure, type not said'): ('Procedure/hsct',),
    ('E5', 'review'): (),
    ('E5', 'transplant in preparation'): ('Procedure/hsct',),
    ('E6', 'none'): (),
    ('E6', 'breast cancer a year ago'): ('Condition/bc',),
    ('E6', 'ended five years ago'): ('Condition/pc',),
    ('E6', 'active, old onset'): ('Condition/pc',),
    ('E6', 'no date'): ('Condition/pc',),
    ('E6', 'year straddling the cutoff'): ('Condition/pc',),
    ('E6', 'year clearly old'): ('Condition/pc',),
    ('E6', 'skin carcinoma is an exception'): (),
    ('E6', 'unconfirmed'): ('Condition/bc',),
    ('E7', 'none'): (),
    ('E7', 'meninges'): ('Condition/men',),
    ('E7', 'meninges with another cancer'): ('Condition/men',),
    ('E8', 'none'): (),
    ('E8', 'AL amyloidosis'): ('Condition/al',),
    ('E8', 'Waldenström'): ('Condition/wm',),
    ('E8', 'plasma cell leukaemia'): ('Condition/pcl',),
    ('E8', 'POEMS'): ('Condition/poems',),
    ('E8', 'unconfirmed amyloidosis'): ('Condition/al',),
    ('E9', 'review'): (),
    ('E10', 'none'): (),
    ('E10', 'COPD recorded'): ('Condition/copd',),
    ('E10', 'COPD inactive'): (),
    ('E11', 'none'): (),
    ('E11', 'heart failure'): ('Condition/hf',),
    ('E12', 'none'): (),
    ('E12', 'chronic hepatitis B'): ('Condition/hbv',),
    ('E13', 'none'): (),
    ('E13', 'HIV'): ('Condition/hiv',),
    ('E13', 'HIV status code without clinical status'): ('Condition/hiv',),
    ('E13', 'hepatitis C'): ('Condition/hcv',),
    ('E13', 'hepatitis C resolved'): ('Condition/hcv',),
    ('E14', 'none'): (),
    ('E14', 'male'): ('Patient/p1',),
    ('E14', 'lactation condition'): ('Condition/lact',),
    ('E14', 'breastfeeding status'): ('Observation/bf',),
    ('E14', 'breastfeeding status, other value'): ('Observation/bf',),
    ('E14', 'lactation without clinical status'): ('Condition/lact',),
    ('E14', 'lactation resolved'): (),
    ('E15', 'none'): (),
    ('E15', 'on another interventional trial'): ('ResearchSubject/rs',),
    ('E15', 'phase 3 trial'): ('ResearchSubject/rs',),
    ('E15', 'observational study'): (),
    ('E15', 'type not recorded'): ('ResearchSubject/rs',),
    ('E15', 'study not in the record'): ('ResearchSubject/rs',),
    ('E15', 'only screening elsewhere'): (),
    ('E15', 'this study is not another'): (),
    ('E16', 'review'): (),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c[0]}-{c[1]}") for c in CASES])
def test_the_evidence(knowledge, case):
    criterion, name, resources, *_ = case
    evidence = evaluate(knowledge, resources, criterion).evidence
    expected = EVIDENCE[criterion, name]
    shown = evidence if len(evidence) <= 2 else (len(evidence), evidence[0], evidence[-1])
    assert shown == expected


def test_two_allogeneic_transplants_are_each_dated_in_the_patients_day(knowledge):
    first = procedure("30243Y3", rid="allo-1", when="2021-06-03")
    second = procedure("30243Y3", rid="allo-2", when="2022-03-09T23:30:00Z")  # 10 March in Paris
    result = evaluate(knowledge, base(first, second), "E4")
    assert (result.status, result.reason) == ("not-met", "allogeneic transplant (30243Y3, 2021-06-03, 2022-03-10)")


@pytest.mark.parametrize(("criterion", "reason"), [
    ("E12", "carrier of viral hepatitis recorded (Z22.50), virus not stated — hepatitis B serology and PCR "
            "needs review"),
    ("E13", "carrier of viral hepatitis recorded (Z22.50), virus not stated — hepatitis C serology needs review"),
])
def test_a_carrier_of_viral_hepatitis_not_saying_which(knowledge, criterion, reason):
    result = evaluate(knowledge, base(condition("Z22.50", rid="carrier")), criterion)
    assert (result.id, result.status, result.reason, result.evidence) == (
        criterion, "unknown", reason, ("Condition/carrier",))


@pytest.mark.parametrize(("value", "status", "reason"), [
    ({"valueQuantity": {"value": 2}}, "met", "ECOG 2 on 2026-11-19"),
    ({"valueQuantity": {"value": 3, "unit": "{score}"}}, "not-met", "ECOG 3 on 2026-11-19 (0–2 required)"),
    ({"valueQuantity": {"unit": "{score}"}}, "unknown",
     "ECOG recorded without a readable score or date — needs review"),
    ({"valueString": "1"}, "unknown", "ECOG recorded without a readable score or date — needs review"),
], ids=["quantity", "quantity-3", "quantity-without-value", "string"])
def test_an_ecog_score_as_a_quantity_or_unreadable(knowledge, value, status, reason):
    scored = {"resourceType": "Observation", "id": "e", "status": "final",
              "code": {"coding": [{"system": LOINC, "code": "89247-1"}]}, "subject": {"reference": "Patient/p1"},
              "effectiveDateTime": day(5), **value}
    result = evaluate(knowledge, base(scored, drop=NO_ECOG), "I5")
    assert (result.status, result.reason, result.evidence) == (status, reason, ("Observation/e",))


def _trial(rid: str, nct: str, category: str | None, status: str = "on-study") -> list[dict]:
    return [research_study(f"s-{rid}", nct, category=category),
            research_subject(f"ResearchStudy/s-{rid}", rid=rid, status=status)]


@pytest.mark.parametrize(("trials", "status", "reason"), [
    # A screening elsewhere, or this study, listed first does not hide the next subject.
    ([*_trial("a", "NCT09000009", "Interventional", "candidate"), *_trial("b", "NCT09000001", "Interventional")],
     "not-met", "on study in NCT09000001 (interventional)"),
    ([*_trial("ours", "NCT06561854", None), *_trial("b", "NCT09000001", "Interventional")],
     "not-met", "on study in NCT09000001 (interventional)"),
    ([*_trial("a", "NCT09000001", "Interventional"), *_trial("b", "NCT09000002", "Interventional")],
     "not-met", "on study in NCT09000001, NCT09000002 (interventional)"),
    ([*_trial("a", "NCT09000003", None), *_trial("b", "NCT09000004", None)],
     "unknown", "on study in NCT09000003, NCT09000004; whether interventional — needs review"),
], ids=["after-a-screening", "after-this-study", "two-interventional", "two-unclear"])
def test_e15_reads_every_research_subject(knowledge, trials, status, reason):
    result = evaluate(knowledge, base(*trials), "E15")
    assert (result.status, result.reason) == (status, reason)


def test_a_response_on_the_last_regimens_first_day_in_the_patients_day_is_during_it(knowledge):
    """The last regimen starts on 2025-08-11; 23:30 UTC on the 10th is the 11th in Paris."""
    on_day_1 = response("C18058", rid="r-day-1", when="2025-08-10T23:30:00Z")
    result = evaluate(knowledge, base(on_day_1, drop=NO_RESPONSE), "I4")
    assert (result.status, result.evidence) == ("met", ("Observation/r-day-1", "MedicationRequest/p1-vrd-bortezomib-1"))


def test_an_uncoded_response_is_dated_in_the_patients_day(knowledge):
    text_only = observation("97509-4", rid="r", when="2026-08-15T23:30:00Z", value_text="good PR")
    result = evaluate(knowledge, base(text_only, drop=NO_RESPONSE), "I4")
    assert result.reason == "response recorded without a recognised code (2026-08-16) — needs review"


@pytest.mark.parametrize(("responses", "extra", "evidence"), [
    ((("C18058", 300), ("C18058", 200)), (), ("Observation/r-2", "MedicationRequest/p1-vrd-bortezomib-1")),
    ((("C18058", 400), ("C18058", 420)), ANOTHER_LINE_LATER, ("Observation/r-1",)),
    ((("C35571", 100), ("C35571", 50)), (), ("Observation/r-2",)),
    (((None, 100), (None, 50)), (), ("Observation/r-2",)),
], ids=["two-during", "two-before-the-last-regimen", "two-less-than-pr", "two-uncoded"])
def test_the_latest_response_alone_is_the_evidence_of_i4(knowledge, responses, extra, evidence):
    """(code or None for an uncoded one, days ago) each; the latest one decides and is the evidence."""
    built = [response(code, rid=f"r-{i}", when=day(ago)) if code else
             observation("97509-4", rid=f"r-{i}", when=day(ago), value_text="good PR")
             for i, (code, ago) in enumerate(responses, 1)]
    assert evaluate(knowledge, base(*built, *extra, drop=NO_RESPONSE), "I4").evidence == evidence


def test_an_unconfirmed_lactation_is_not_decided(knowledge):
    result = evaluate(knowledge, base(condition("Z39.1", rid="lact", verification="provisional")), "E14")
    assert (result.status, result.reason) == ("unknown", "lactation recorded (Z39.1) without an active status — "
                                              "needs review")


def test_the_breastfeeding_status_is_dated_in_the_patients_day(knowledge):
    status = observation("63895-7", rid="bf", when="2026-11-18T23:30:00Z", value=(SNOMED, "413712001"))
    result = evaluate(knowledge, base(status), "E14")
    assert (result.status, result.reason) == ("not-met", "lactation recorded (breastfeeding status 2026-11-19)")


def test_an_ecog_score_is_dated_in_the_patients_day(knowledge):
    """23:30 UTC the day before is today in Paris: the latest ECOG is the one taken today."""
    earlier = ecog(3, rid="e-1", when=day(3))
    today = ecog(1, rid="e-2", when=f"{day(1)}T23:30:00Z")
    result = evaluate(knowledge, base(earlier, today, drop=NO_ECOG), "I5")
    assert (result.status, result.reason) == ("met", "ECOG 1 on 2026-11-24")


def test_a_breastfeeding_status_with_another_value_is_dated_in_the_patients_day(knowledge):
    status = observation("63895-7", rid="bf", when="2026-11-18T23:30:00Z", value=(SNOMED, "169750002"))
    assert evaluate(knowledge, base(status), "E14").reason == (
        "breastfeeding status recorded on 2026-11-19 with an unrecognised value — needs review")


def test_the_same_drugs_again_are_said_to_be_resumed_or_a_retreatment(knowledge):
    again = line(("bortezomib", "lenalidomide", "dexamethasone"), start_days_ago=250, cycles=3, prefix="again")
    assert evaluate(knowledge, base(*again), "I3").reason == (
        "1 prior line of 2+ cycles: bortezomib + lenalidomide + dexamethasone from 2025-08-11 (168 days); "
        "bortezomib + lenalidomide + dexamethasone from 2026-03-19 (84 days), same drugs as the line before: "
        "resumed or retreatment")


def test_three_years_before_a_29_february_is_the_28th():
    # E6's window on a leap day: the year before has no 29 February, so the window opens on the 28th.
    assert _years_before(date(2028, 2, 29), 3) == date(2025, 2, 28)
    assert _years_before(date(2028, 2, 29), 4) == date(2024, 2, 29)
    assert _years_before(date(2026, 11, 24), 3) == date(2023, 11, 24)


def _mcode(resource: dict) -> dict:
    return {**resource, "meta": {"profile": [
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"]}}


def test_an_allogeneic_transplant_without_a_date_is_said_undated(knowledge):
    result = evaluate(knowledge, base(procedure("30243Y3", rid="allo", when=None)), "E4")
    assert (result.status, result.reason, result.evidence) == (
        "not-met", "allogeneic transplant (30243Y3, undated)", ("Procedure/allo",))


def test_a_relapse_code_and_another_myeloma_with_status_relapse_are_both_shown(knowledge):
    relapse = condition("109989006", SNOMED, rid="mm-2", clinical="relapse")
    result = evaluate(knowledge, base(relapse), "I2")
    assert (result.status, result.reason, result.evidence) == (
        "met", "multiple myeloma in relapse (C90.02; 109989006, status relapse)",
        ("Condition/p1-mm", "Condition/mm-2"))


def test_a_relapse_code_ended_without_a_status_says_so(knowledge):
    ended = condition("C90.02", rid="mm", clinical=None, abatement=day(365))
    result = evaluate(knowledge, base(ended, drop=kind("Condition", "C90")), "I2")
    assert (result.status, result.reason, result.evidence) == (
        "unknown", "coded in relapse (C90.02) but its status says ended (abatement recorded) — needs review",
        ("Condition/mm",))


def test_a_regimen_shorter_than_two_cycles_is_not_listed_among_the_prior_lines(knowledge):
    short = line(("pomalidomide", "dexamethasone"), start_days_ago=100, cycles=1, prefix="pd")
    result = evaluate(knowledge, base(*short), "I3")
    assert (result.status, result.reason) == (
        "met",
        "1 prior line of 2+ cycles: bortezomib + lenalidomide + dexamethasone from 2025-08-11 (168 days)")
    # Still the evidence: the card shows every order the derivation read.
    assert "MedicationRequest/pd-pomalidomide-1" in result.evidence


def test_an_undecided_line_count_lists_the_regimens_then_each_note(knowledge):
    resources = base(statement("lenalidomide", rid="len", start=day(300)),
                     statement("bortezomib", rid="btz", start=None),
                     order("dexamethasone", rid="dex", start=day(900), end=day(800)),
                     drop=kind("MedicationRequest"))
    result = evaluate(knowledge, resources, "I3")
    assert (result.status, result.reason) == (
        "unknown", "0–2 prior lines (lenalidomide from 2026-01-28 (1 days), end not known; dexamethasone "
        "alone is not counted as a line; 1 undated anti-myeloma order(s)) — needs review")


@pytest.fixture
def machine_west_of_utc(monkeypatch):
    """The machine's own zone set to one where 23:30 UTC is still the same day (Los Angeles): a date
    taken in the machine's zone instead of the patient's is then wrong on any machine, not only on one
    that runs in UTC."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_west_of_utc")
def test_another_malignancy_ended_just_before_midnight_utc_is_dated_in_the_patients_day(knowledge):
    """23:30 UTC on 23 November 2023 is 24 November in Paris: exactly three years before today, so within."""
    ended = condition("C61", rid="pc", clinical="resolved", abatement="2023-11-23T23:30:00Z")
    result = evaluate(knowledge, base(ended), "E6")
    assert (result.status, result.reason) == (
        "not-met",
        "other malignancy within 3 years: C61 ended 2023-11-24 (unless the investigator considers it cured)")


def test_an_active_malignancy_without_any_date_shows_no_empty_date(knowledge):
    result = evaluate(knowledge, base(condition("C61", rid="pc")), "E6")
    assert (result.status, result.reason) == (
        "not-met", "other malignancy within 3 years: C61 active (unless the investigator considers it cured)")


def test_a_malignancy_last_known_present_three_years_ago_to_the_day_may_be_within(knowledge):
    # Resolved without an end: it ended between its onset and its recorded date, the window's first day.
    resolved = condition("C61", rid="pc", clinical="resolved", onset="2020-01-01", recorded="2023-11-24")
    result = evaluate(knowledge, base(resolved), "E6")
    assert (result.status, result.reason, result.evidence) == (
        "unknown", "other malignancy: C61 resolved, end not recorded (onset 2020-01-01; recorded "
        "2023-11-24): not known whether within 3 years — needs review", ("Condition/pc",))


@pytest.mark.parametrize(("resources", "status", "reason"), [
    # An ICD-10 malignancy with an mCODE profile is dated like any other, not also "not coded in ICD-10".
    ((_mcode(condition("C61", rid="pc", clinical="resolved", onset=day(2200), abatement=day(1900))),), "met",
     "other malignancy more than 3 years ago: C61 ended 2021-09-11"),
    # mCODE profiles the myeloma itself as a primary cancer: that is no other malignancy.
    ((_mcode(condition("C90.02", rid="p1-mm", onset="2019-05-02")),), "met", "no other malignancy recorded"),
    ((_mcode(condition("254637007", SNOMED, rid="lung", verification="entered-in-error")),), "met",
     "no other malignancy recorded"),
    ((_mcode(condition("254637007", SNOMED, rid="lung")),), "unknown",
     "other malignancy: cancer condition 254637007 not coded in ICD-10 — needs review"),
], ids=["icd10-with-profile", "myeloma-with-profile", "entered-in-error", "snomed-with-profile"])
def test_e6_reads_mcode_cancer_conditions(knowledge, resources, status, reason):
    result = evaluate(knowledge, base(*resources, drop=kind("Condition")), "E6")
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize(("resources", "status", "reason"), [
    ((condition("C50.911", rid="bc", onset=day(100)), condition("C61", rid="pc", clinical="resolved",
                                                              abatement=day(300))), "not-met",
     "other malignancy within 3 years: C50.911 active (onset 2026-08-16); C61 ended 2026-01-28 (unless the "
     "investigator considers it cured)"),
    ((condition("C61", rid="pc", clinical="resolved"), condition("C50.911", rid="bc", clinical="resolved")),
     "unknown",
     "other malignancy: C61 without a precise date; C50.911 without a precise date — needs review"),
    ((condition("C61", rid="pc", clinical="resolved", abatement=day(1900)),
      condition("C50.911", rid="bc", clinical="resolved", abatement=day(2000))), "met",
     "other malignancy more than 3 years ago: C61 ended 2021-09-11; C50.911 ended 2021-06-03"),
], ids=["two-recent", "two-undated", "two-old"])
def test_two_other_malignancies_are_both_listed(knowledge, resources, status, reason):
    result = evaluate(knowledge, base(*resources), "E6")
    evidence = tuple(f"Condition/{r['id']}" for r in resources)
    assert (result.status, result.reason, result.evidence) == (status, reason, evidence)


@pytest.mark.parametrize(("resources", "status", "reason", "evidence"), [
    ((condition("C88.0", rid="wm"), condition("E85.81", rid="al")), "not-met",
     "recorded: Waldenström macroglobulinaemia (C88.0); AL amyloidosis (E85.81)",
     ("Condition/wm", "Condition/al")),
    ((condition("E85.8", ICD10, rid="amy"),), "unknown",
     "recorded: Amyloidosis, AL type not stated (E85.8) — which one the protocol means needs review",
     ("Condition/amy",)),
], ids=["two-disorders", "amyloidosis-type-not-stated"])
def test_e8_names_each_disorder_recorded(knowledge, resources, status, reason, evidence):
    result = evaluate(knowledge, base(*resources), "E8")
    assert (result.id, result.status, result.reason, result.evidence) == ("E8", status, reason, evidence)


def test_hiv_and_hepatitis_c_are_both_named(knowledge):
    result = evaluate(knowledge, base(condition("B20", rid="hiv"), condition("B18.2", rid="hcv")), "E13")
    assert (result.status, result.reason, result.evidence) == (
        "not-met", "recorded: B20, B18.2", ("Condition/hiv", "Condition/hcv"))


def test_an_unconfirmed_hiv_is_not_decided(knowledge):
    result = evaluate(knowledge, base(condition("B20", rid="hiv", verification="unconfirmed")), "E13")
    assert (result.status, result.reason, result.evidence) == (
        "unknown", "B20 recorded as unconfirmed or resolved — serology needs review", ("Condition/hiv",))
