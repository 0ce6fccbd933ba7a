"""The eligibility value-set table: each criterion's condition as EHRs code it, with and without status and dates.

French sites code diagnoses in WHO ICD-10 (CIM-10), US ones in ICD-10-CM, many in SNOMED CT; a problem-list
entry has a clinical status, an encounter diagnosis often none. Each row is one such condition added to the
baseline candidate (tests/fixtures/eligibility/builders.py) and the status the criterion must give. Where
WHO ICD-10 is coarser than ICD-10-CM (no AL amyloidosis, no myeloma "in relapse", one carrier code for every
viral hepatitis, brain and meninges together), the WHO code raises review: never "met", never a guess.
Drug names decide only for orders without a recognised code: those rows are the French-text ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.eligibility.builders import ICD10, ICD10CM, SNOMED, condition, day, order
from tests.rules.test_eligibility_criteria import NO_MEDICATION, NO_MYELOMA, base, evaluate

MET, NOT_MET, UNKNOWN = "met", "not-met", "unknown"
FIVE_YEARS, FOUR_MONTHS, ONE_YEAR = day(1900), day(120), day(365)


def cond(code: str, system: str = ICD10CM, **kwargs: Any) -> dict[str, Any]:
    return condition(code, system, rid="c", **kwargs)


def with_encounter(resource: dict[str, Any], when: str) -> dict[str, Any]:
    """The condition as an encounter diagnosis whose (contained) encounter gives the date."""
    encounter = {"resourceType": "Encounter", "id": "enc", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "period": {"start": when, "end": when}}
    return {**resource, "contained": [encounter], "encounter": {"reference": "#enc"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "encounter-diagnosis"}]}]}


def asserted(resource: dict[str, Any], when: str) -> dict[str, Any]:
    return {**resource, "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/condition-assertedDate",
                                       "valueDateTime": when}]}


def mcode(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "meta": {"profile": [
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"]}}


# (criterion, what, extra resources, drop the baseline's myeloma?, expected status)
ROWS: list[tuple[str, str, list[dict[str, Any]], bool, str]] = [
    # I2 — documented myeloma in relapse. Only ICD-10-CM has an "in relapse" code; elsewhere the status decides.
    ("I2", "CM C90.02 active", [cond("C90.02")], True, MET),
    ("I2", "CM C90.02 without status", [cond("C90.02", clinical=None)], True, MET),
    ("I2", "CM C90.02 remission", [cond("C90.02", clinical="remission")], True, UNKNOWN),
    ("I2", "CM C90.02 without status, ended", [cond("C90.02", clinical=None, abatement=ONE_YEAR)], True, UNKNOWN),
    ("I2", "CM C90.00 status relapse", [cond("C90.00", clinical="relapse")], True, MET),
    ("I2", "CM C90.00 active", [cond("C90.00")], True, UNKNOWN),
    ("I2", "WHO C90.0 status relapse", [cond("C90.0", ICD10, clinical="relapse")], True, MET),
    ("I2", "WHO C90.0 status recurrence", [cond("C90.0", ICD10, clinical="recurrence")], True, MET),
    ("I2", "WHO C90.0 active: no relapse code in WHO", [cond("C90.0", ICD10)], True, UNKNOWN),
    ("I2", "WHO C90.0 without status", [cond("C90.0", ICD10, clinical=None)], True, UNKNOWN),
    ("I2", "WHO C90.00 (national extension) relapse", [cond("C90.00", ICD10, clinical="relapse")], True, MET),
    ("I2", "WHO C90.02 is no relapse code", [cond("C90.02", ICD10)], True, UNKNOWN),
    ("I2", "SNOMED status relapse", [cond("109989006", SNOMED, clinical="relapse")], True, MET),
    ("I2", "SNOMED active", [cond("109989006", SNOMED)], True, UNKNOWN),
    ("I2", "SNOMED without status", [cond("109989006", SNOMED, clinical=None)], True, UNKNOWN),
    ("I2", "no myeloma", [], True, NOT_MET),
    # E4 — transplant status codes never say allogeneic.
    ("E4", "CM Z94.84 without status", [cond("Z94.84", clinical=None)], False, UNKNOWN),
    ("E4", "CM Z94.81 resolved", [cond("Z94.81", clinical="resolved")], False, UNKNOWN),
    # E6 — another malignancy within 3 years, dated by the last time it was known present.
    ("E6", "CM active, old onset", [cond("C50.911", onset=FIVE_YEARS)], False, NOT_MET),
    ("E6", "WHO active, old onset", [cond("C50.9", ICD10, onset=FIVE_YEARS)], False, NOT_MET),
    ("E6", "SNOMED-only mCODE cancer", [mcode(cond("254837009", SNOMED, onset=FIVE_YEARS))], False, UNKNOWN),
    ("E6", "CM no status, onset 5 y, recorded 4 months ago",
     [cond("C50.911", clinical=None, onset=FIVE_YEARS, recorded=FOUR_MONTHS)], False, NOT_MET),
    ("E6", "WHO no status, onset 5 y, recorded 4 months ago",
     [cond("C50.9", ICD10, clinical=None, onset=FIVE_YEARS, recorded=FOUR_MONTHS)], False, NOT_MET),
    ("E6", "no status, onset 5 y, encounter 4 months ago",
     [with_encounter(cond("C50.911", clinical=None, onset=FIVE_YEARS), FOUR_MONTHS)], False, NOT_MET),
    ("E6", "no status, onset 5 y, asserted a year ago",
     [asserted(cond("C50.9", ICD10, clinical=None, onset=FIVE_YEARS), ONE_YEAR)], False, NOT_MET),
    ("E6", "no status, onset 5 y, nothing later", [cond("C50.911", clinical=None, onset=FIVE_YEARS)], False, MET),
    ("E6", "no status, year-only recorded date straddling the cutoff",
     [cond("C50.911", clinical=None, onset=FIVE_YEARS, recorded="2023")], False, UNKNOWN),
    ("E6", "no status, ended 5 y ago", [cond("C50.9", ICD10, clinical=None, onset=day(2500),
                                             abatement=FIVE_YEARS, recorded=FOUR_MONTHS)], False, MET),
    ("E6", "resolved without end, onset 5 y, recorded 4 months ago",
     [cond("C50.911", clinical="resolved", onset=FIVE_YEARS, recorded=FOUR_MONTHS)], False, UNKNOWN),
    ("E6", "resolved without end, recorded 4 months ago, no onset",
     [cond("C50.9", ICD10, clinical="resolved", recorded=FOUR_MONTHS)], False, UNKNOWN),
    ("E6", "resolved without end, all dates old",
     [cond("C50.9", ICD10, clinical="resolved", onset=day(2500), recorded=FIVE_YEARS)], False, MET),
    ("E6", "remission, ended a year ago", [cond("C61", ICD10, clinical="remission", abatement=ONE_YEAR)], False,
     NOT_MET),
    ("E6", "resolved, no dates", [cond("C61", ICD10, clinical="resolved")], False, UNKNOWN),
    ("E6", "WHO skin carcinoma", [cond("C44.9", ICD10, onset=FOUR_MONTHS)], False, MET),
    ("E6", "WHO myeloma is not another malignancy", [cond("C90.0", ICD10, onset=FOUR_MONTHS)], False, MET),
    # E7 — meningeal involvement; WHO ICD-10 does not tell the meninges from the brain.
    ("E7", "CM C79.32", [cond("C79.32")], False, NOT_MET),
    ("E7", "CM C79.32 without status", [cond("C79.32", clinical=None)], False, NOT_MET),
    ("E7", "WHO C79.3 brain or meninges", [cond("C79.3", ICD10)], False, UNKNOWN),
    ("E7", "WHO C79.4 other parts of the nervous system", [cond("C79.4", ICD10, clinical=None)], False, UNKNOWN),
    ("E7", "WHO C79.5 bone", [cond("C79.5", ICD10)], False, MET),
    # E8 — plasma cell leukaemia, Waldenström, POEMS, amyloidosis (a history counts).
    ("E8", "PCL CM C90.10", [cond("C90.10")], False, NOT_MET),
    ("E8", "PCL WHO C90.1 resolved", [cond("C90.1", ICD10, clinical="resolved")], False, NOT_MET),
    ("E8", "PCL WHO C90.1 without status", [cond("C90.1", ICD10, clinical=None)], False, NOT_MET),
    ("E8", "Waldenström CM C88.0", [cond("C88.0")], False, NOT_MET),
    ("E8", "Waldenström WHO C88.0 without status", [cond("C88.0", ICD10, clinical=None)], False, NOT_MET),
    ("E8", "Waldenström SNOMED", [cond("190818004", SNOMED)], False, NOT_MET),
    ("E8", "POEMS SNOMED", [cond("79268002", SNOMED, clinical=None)], False, NOT_MET),
    ("E8", "AL amyloidosis CM E85.81", [cond("E85.81", clinical=None)], False, NOT_MET),
    ("E8", "AL amyloidosis SNOMED", [cond("23132008", SNOMED)], False, NOT_MET),
    ("E8", "WHO E85.8 other amyloidosis (holds AL)", [cond("E85.8", ICD10)], False, UNKNOWN),
    ("E8", "WHO E85.9 amyloidosis unspecified", [cond("E85.9", ICD10, clinical=None)], False, UNKNOWN),
    ("E8", "WHO E85.3 secondary amyloidosis", [cond("E85.3", ICD10, clinical="resolved")], False, UNKNOWN),
    ("E8", "CM E85.89 other amyloidosis", [cond("E85.89")], False, UNKNOWN),
    ("E8", "CM E85.82 wild-type ATTR", [cond("E85.82")], False, UNKNOWN),
    ("E8", "WHO E85.8 and CM E85.81", [cond("E85.8", ICD10), condition("E85.81", rid="al")], False, NOT_MET),
    ("E8", "unconfirmed AL, and WHO E85.8", [condition("E85.81", rid="al", verification="provisional"),
                                             cond("E85.8", ICD10)], False, UNKNOWN),
    # E10 — COPD: control is not coded.
    ("E10", "CM J44.9", [cond("J44.9")], False, UNKNOWN),
    ("E10", "WHO J44.8 without status", [cond("J44.8", ICD10, clinical=None)], False, UNKNOWN),
    ("E10", "SNOMED COPD", [cond("13645005", SNOMED)], False, UNKNOWN),
    ("E10", "WHO J44.9 inactive", [cond("J44.9", ICD10, clinical="inactive")], False, MET),
    ("E10", "WHO J44.1 without status, ended", [cond("J44.1", ICD10, clinical=None, abatement=ONE_YEAR)], False,
     MET),
    # E11 — cardiac disease: significance is not coded.
    ("E11", "CM I50.9", [cond("I50.9")], False, UNKNOWN),
    ("E11", "WHO I50.0 without status", [cond("I50.0", ICD10, clinical=None)], False, UNKNOWN),
    ("E11", "WHO I47.2 ventricular tachycardia", [cond("I47.2", ICD10)], False, UNKNOWN),
    ("E11", "WHO I49.0 ventricular fibrillation", [cond("I49.0", ICD10)], False, UNKNOWN),
    ("E11", "SNOMED heart failure", [cond("84114007", SNOMED)], False, UNKNOWN),
    ("E11", "WHO I51.9 not in the set", [cond("I51.9", ICD10)], False, MET),
    # E12 — hepatitis B with positive PCR: any hepatitis B (or a carrier, virus not stated) → review.
    ("E12", "CM B18.1", [cond("B18.1")], False, UNKNOWN),
    ("E12", "WHO B18.1 without status", [cond("B18.1", ICD10, clinical=None)], False, UNKNOWN),
    ("E12", "WHO B18.0 resolved", [cond("B18.0", ICD10, clinical="resolved")], False, UNKNOWN),
    ("E12", "SNOMED chronic hepatitis B", [cond("61977001", SNOMED)], False, UNKNOWN),
    ("E12", "CM Z22.51 carrier", [cond("Z22.51", clinical=None)], False, UNKNOWN),
    ("E12", "WHO Z22.5 carrier, virus not stated", [cond("Z22.5", ICD10, clinical=None)], False, UNKNOWN),
    ("E12", "CM Z22.50 carrier, unspecified", [cond("Z22.50")], False, UNKNOWN),
    ("E12", "WHO B16.9 acute hepatitis B", [cond("B16.9", ICD10)], False, UNKNOWN),
    ("E12", "CM B16.9 acute hepatitis B", [cond("B16.9", clinical="resolved")], False, UNKNOWN),
    ("E12", "CM B19.10 unspecified hepatitis B", [cond("B19.10")], False, UNKNOWN),
    ("E12", "CM B18.2 is hepatitis C", [cond("B18.2")], False, MET),
    ("E12", "CM Z22.52 is hepatitis C", [cond("Z22.52")], False, MET),
    # E13 — HIV (any) or hepatitis C (not resolved); a carrier whose virus is not stated → review.
    ("E13", "CM B20", [cond("B20")], False, NOT_MET),
    ("E13", "CM Z21 resolved", [cond("Z21", clinical="resolved")], False, NOT_MET),
    ("E13", "WHO B20.0", [cond("B20.0", ICD10)], False, NOT_MET),
    ("E13", "WHO B24 without status", [cond("B24", ICD10, clinical=None)], False, NOT_MET),
    ("E13", "WHO Z21 HIV positive NOS", [cond("Z21", ICD10, clinical=None)], False, NOT_MET),
    ("E13", "SNOMED HIV", [cond("86406008", SNOMED)], False, NOT_MET),
    ("E13", "CM B18.2", [cond("B18.2", clinical=None)], False, NOT_MET),
    ("E13", "WHO B18.2", [cond("B18.2", ICD10)], False, NOT_MET),
    ("E13", "WHO B17.1 acute hepatitis C", [cond("B17.1", ICD10)], False, NOT_MET),
    ("E13", "CM B19.20 unspecified hepatitis C", [cond("B19.20", clinical=None)], False, NOT_MET),
    ("E13", "SNOMED chronic hepatitis C", [cond("128302006", SNOMED)], False, NOT_MET),
    ("E13", "CM Z22.52 hepatitis C carrier", [cond("Z22.52", clinical=None)], False, NOT_MET),
    ("E13", "CM B18.2 resolved", [cond("B18.2", clinical="resolved")], False, UNKNOWN),
    ("E13", "WHO B18.2 without status, ended", [cond("B18.2", ICD10, clinical=None, abatement=ONE_YEAR)], False,
     UNKNOWN),
    ("E13", "WHO Z22.5 carrier, virus not stated", [cond("Z22.5", ICD10, clinical=None)], False, UNKNOWN),
    ("E13", "CM Z22.59 carrier of other viral hepatitis", [cond("Z22.59")], False, UNKNOWN),
    ("E13", "CM Z22.51 is hepatitis B", [cond("Z22.51")], False, MET),
    ("E13", "WHO B18.1 is hepatitis B", [cond("B18.1", ICD10)], False, MET),
    # E14 — lactation.
    ("E14", "CM Z39.1 active", [cond("Z39.1")], False, NOT_MET),
    ("E14", "WHO Z39.1 active", [cond("Z39.1", ICD10)], False, NOT_MET),
    ("E14", "SNOMED breastfeeding active", [cond("413712001", SNOMED)], False, NOT_MET),
    ("E14", "WHO Z39.1 without status", [cond("Z39.1", ICD10, clinical=None)], False, UNKNOWN),
    ("E14", "WHO Z39.1 without status, ended", [cond("Z39.1", ICD10, clinical=None, abatement=ONE_YEAR)], False,
     MET),
    ("E14", "CM Z39.1 resolved", [cond("Z39.1", clinical="resolved")], False, MET),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r[0]}-{r[1]}") for r in ROWS])
def test_condition_coding(knowledge, row):
    criterion, _, extra, drop_myeloma, status = row
    resources = base(*extra, drop=NO_MYELOMA) if drop_myeloma else base(*extra)
    result = evaluate(knowledge, resources, criterion)
    assert result.status == status, result.reason
    if extra and status != MET:
        assert result.evidence, "a decision or a review names the condition it read"


def test_every_condition_criterion_is_in_the_table():
    assert {r[0] for r in ROWS} == {"I2", "E4", "E6", "E7", "E8", "E10", "E11", "E12", "E13", "E14"}
    for criterion in {r[0] for r in ROWS} - {"E4"}:
        systems = {c["code"]["coding"][0]["system"] for r in ROWS if r[0] == criterion for c in r[2]
                   if c["resourceType"] == "Condition" and c["code"].get("coding")}
        assert {ICD10, ICD10CM} <= systems, criterion


def _orders(drug_text: str, prefix: str, start: int) -> list[dict[str, Any]]:
    """Two monthly orders written in words only (no code), as a French EHR may send them."""
    return [order(None, rid=f"{prefix}-{n}", start=day(start - 28 * n), end=day(start - 28 * n - 27),
                  text=drug_text) for n in range(3)]


# Names decide only for orders without a recognised code: French spellings and brands.
TEXT_ROWS = [
    ("E3", "Imnovid (pomalidomide) rules out ICARIA", _orders("IMNOVID 4 mg gélule", "pom", 900), MET,
     "rules out ICARIA"),
    ("E3", "Kyprolis rules out IKEMA", _orders("Kyprolis 60 mg poudre pour solution", "k", 900), MET,
     "rules out IKEMA"),
    ("E2", "Darzalex exposure", _orders("DARZALEX 1800 mg solution injectable SC", "d", 900), UNKNOWN,
     "exposure is not refractoriness"),
    ("E2", "Sarclisa exposure", _orders("Sarclisa 20 mg/mL perfusion", "s", 900), UNKNOWN,
     "exposure is not refractoriness"),
    ("I3", "lénalidomide + bortézomib in French words", [*_orders("lénalidomide 25 mg gélule", "len", 470),
                                                         *_orders("bortézomib 3,5 mg SC", "bor", 470)], MET,
     "1 prior line"),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r[0]}-{r[1]}") for r in TEXT_ROWS])
def test_drug_names_in_french(knowledge, row):
    criterion, _, orders, status, reason = row
    result = evaluate(knowledge, base(*orders, drop=NO_MEDICATION), criterion)
    assert result.status == status, result.reason
    assert reason in result.reason
