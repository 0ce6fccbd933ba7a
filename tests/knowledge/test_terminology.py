"""Code sets: codes by any system alias, ICD normalisation, is-a and regex filters, names, site codes."""

from __future__ import annotations

import json

import pytest

from cds_service.errors import ConfigError
from cds_service.knowledge.model import load_knowledge

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"


@pytest.mark.parametrize(("system", "code"), [
    (RXNORM, "3264"), ("urn:oid:2.16.840.1.113883.6.88", "3264"), ("2.16.840.1.113883.6.88", "3264"),
    (RXNORM, " 3264 "), (RXNORM, "197582"), (ATC, "H02AB02"), ("http://www.whocc.no/atc/", "H02AB02"),
])
def test_dexamethasone_codes_under_any_alias(knowledge, system, code):
    assert knowledge.codes("dexamethasone").has_code(system, code)


@pytest.mark.parametrize(("system", "code"), [(RXNORM, "32640"), ("http://snomed.info/sct", "3264"), (RXNORM, ""),
                                              (None, "3264")])
def test_other_codes_are_not_dexamethasone(knowledge, system, code):
    assert not knowledge.codes("dexamethasone").has_code(system, code)


@pytest.mark.parametrize(("text", "found"), [
    ("Dexamethasone 40 mg tablet", "Dexamethasone"), ("DEXAMÉTHASONE 20MG", "DEXAMÉTHASONE"),
    ("Neofordex 40 mg", "Neofordex"), ("dexamethasone sodium phosphate inj", "dexamethasone sodium phosphate"),
    ("dexamethasonexyz", None), ("betamethasone", None), ("", None),
])
def test_names_match_whole_words_case_insensitively(knowledge, text, found):
    match = knowledge.codes("dexamethasone").match_text(text)
    assert (match.text if match else None) == found


def test_concept_matches_by_code_before_text(knowledge):
    concept = {"coding": [{"system": RXNORM, "code": "197582", "display": "dexamethasone 4 MG Oral Tablet"}]}
    assert knowledge.codes("dexamethasone").match_concept(concept).how == "code"
    assert knowledge.codes("dexamethasone").match_concept({"text": "Dexamethasone 4 mg"}).how == "text"
    assert knowledge.codes("dexamethasone").match_concept({"text": "paracetamol"}) is None


def test_icd_codes_match_with_or_without_their_dot(knowledge):
    myeloma = knowledge.codes("multiple-myeloma")
    assert myeloma.has_code(ICD10CM, "C90.02") and myeloma.has_code(ICD10CM, "c9002")
    assert myeloma.has_code(ICD10, "C90.0") and not myeloma.has_code(ICD10CM, "C90.1")


def test_is_a_filters_on_icd_follow_the_code_prefix(knowledge):
    cardiac = knowledge.codes("cardiac-disease")
    assert cardiac.has_code(ICD10CM, "I50.22") and cardiac.has_code(ICD10CM, "I50")
    assert not cardiac.has_code(ICD10CM, "I51.9") and not cardiac.has_code(ICD10CM, "I20.9")
    assert knowledge.codes("copd").has_code(ICD10, "J44.9")


@pytest.mark.parametrize(("code", "expected"), [
    ("C50.911", True), ("C34.90", True), ("C83.30", True), ("C4A.9", True),  # breast, lung, lymphoma, Merkel
    ("C90.00", False), ("C90.10", False), ("C88.0", False), ("C79.51", False), ("C44.91", False), ("D06.9", False),
])
def test_other_malignancy_keeps_the_protocol_exceptions_out(knowledge, code, expected):
    assert knowledge.codes("other-malignancy").has_code(ICD10CM, code) is expected


def test_ecog_answers_carry_their_score(knowledge):
    ecog = knowledge.codes("ecog")
    assert [ecog.ordinal("http://loinc.org", c) for c in ("LA9622-7", "LA9624-3", "LA9627-6")] == [0, 2, 5]
    assert ecog.has_code("http://loinc.org", "89247-1")


def test_unions_include_their_parts(knowledge):
    therapy = knowledge.codes("myeloma-therapy")
    assert therapy.has_code(RXNORM, "1302966") and therapy.match_text("Revlimid 25 mg")
    assert therapy.match_text("melphalan 200 mg/m2")
    assert knowledge.codes("anti-cd38").has_code(ATC, "L01FC02") and knowledge.codes("anti-cd38").has_code(RXNORM,
                                                                                                             "1721947")


def test_unverified_codes_are_not_shipped(knowledge):
    """terminology.md marks isatuximab's RxNorm code ✘: it is matched by ATC, HCPCS, name and site codes only."""
    isatuximab = knowledge.codes("isatuximab")
    assert not any(system == RXNORM for system, _ in isatuximab.codes)
    assert isatuximab.has_code(ATC, "L01FC02") and isatuximab.match_text("SARCLISA 500 mg")


def test_route_words(knowledge):
    local, systemic = knowledge.codes("routes-local"), knowledge.codes("routes-systemic")
    assert local.match_text("dexamethasone 0.1% eye drops") and local.match_text("Collyre")
    assert local.match_concept({"coding": [{"system": "http://snomed.info/sct", "code": "54485002"}]})
    assert systemic.match_text("PO") and systemic.match_text("40 mg IV") and not systemic.match_text("ivy")


def test_site_codes_extend_a_shipped_value_set_and_its_unions(tmp_path):
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "ValueSet", "url": "https://dexfree.example.org/fhir/ValueSet/dexamethasone", "status": "active",
        "compose": {"include": [{"system": "http://hopital.example/fr/ucd", "concept": [{"code": "9123456"}]}]}}}]}))
    from cds_service.config import Config

    local = load_knowledge(Config().plan_definitions, site)
    assert local.codes("dexamethasone").has_code("http://hopital.example/fr/ucd", "9123456")
    assert local.codes("myeloma-therapy").has_code("http://hopital.example/fr/ucd", "9123456")


def test_site_codes_for_an_unknown_value_set_are_refused(tmp_path):
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"resourceType": "ValueSet", "url": "https://elsewhere.example/ValueSet/x",
                                "status": "active"}))
    from cds_service.config import Config

    with pytest.raises(ConfigError, match="not a shipped ValueSet"):
        load_knowledge(Config().plan_definitions, site)
    site.write_text("[]")
    with pytest.raises(ConfigError, match="must hold ValueSets"):
        load_knowledge(Config().plan_definitions, site)


def test_a_text_searched_again_gives_the_same_answer_and_new_names_are_not_hidden():
    from cds_service.knowledge.terminology import CodeSet

    names = CodeSet(key="k", url="u", title="t", names={"isatuximab"})
    names.finish({})
    assert names.match_text("Isatuximab 10 mg/kg").text == "Isatuximab"
    assert names.match_text("Isatuximab 10 mg/kg").text == "Isatuximab"  # remembered
    assert names.match_text("pomalidomide") is None
    names.names.add("pomalidomide")
    names.finish({})  # a set whose names change is finished again: what it remembered goes
    assert names.match_text("pomalidomide").text == "pomalidomide"


def test_a_coding_looked_up_again_gives_the_same_answer_and_new_codes_are_not_hidden(knowledge):
    from cds_service.knowledge.terminology import CodeSet

    codes = CodeSet(key="k", url="u", title="t", codes={("http://snomed.info/sct", "26643006")},
                    prefixes={("http://hl7.org/fhir/sid/icd-10", "C90")},
                    excluded_prefixes={("http://hl7.org/fhir/sid/icd-10", "C901")})
    codes.finish({"http://snomed.info/sct/": "http://snomed.info/sct"})
    asked = [("http://snomed.info/sct", "26643006"), ("http://snomed.info/sct/", " 26643006 "),
             ("http://snomed.info/sct", "47625008"), ("http://hl7.org/fhir/sid/icd-10", "C90.0"),
             ("http://hl7.org/fhir/sid/icd-10", "C90.1"), ("http://hl7.org/fhir/sid/icd-10", "C91")]
    first = [codes.has_code(system, code) for system, code in asked]
    assert first == [True, True, False, True, False, False]
    assert [codes.has_code(system, code) for system, code in asked] == first  # remembered alike
    codes.codes.add(("http://snomed.info/sct", "47625008"))
    codes.finish({})  # a set whose codes change is finished again: what it remembered goes
    assert codes.has_code("http://snomed.info/sct", "47625008")
    dex = knowledge.codes("dexamethasone")
    assert [dex.has_code(s, c) for s, c in asked * 2] == [dex._has_code(s, c) for s, c in asked * 2]


def test_words_found_again_are_the_same_and_a_caller_cannot_change_them():
    from cds_service.knowledge.terminology import CodeSet, WordMatcher

    oral = CodeSet(key="oral", url="u", title="t", names={"per os", "oral"})
    matcher = WordMatcher({"systemic": oral})
    first = matcher.find("40 mg per os")
    first.clear()
    assert [(h.label, h.text) for h in matcher.find("40 mg per os")] == [("systemic", "per os")]
