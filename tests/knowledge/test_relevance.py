"""What is selected on the raw JSON before validation: only what the rules can use."""

from __future__ import annotations

import pytest

from cds_service.knowledge.relevance import relevance

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.mark.parametrize(("part", "raw", "kept"), [
    ("medicationRequests", {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3264"}]}}, True),
    ("medicationRequests", {"medicationCodeableConcept": {"text": "Revlimid 25 mg"}}, True),
    ("medicationAdministrations", {"medicationCodeableConcept": {"text": "SARCLISA"}}, True),
    ("medicationRequests", {"medicationCodeableConcept": {"text": "paracetamol 1 g"}}, False),
    ("medicationRequests", {"medicationReference": {"reference": "Medication/1"}}, True),
    ("medicationStatements", {"medicationCodeableConcept": "not a concept"}, False),
    ("observations", {"code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]}}, True),
    ("observations", {"code": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.1", "code": "63895-7"}]}}, True),
    ("observations", {"code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}}, False),  # glucose
    ("observations", {"code": "x"}, False),
    ("conditions", {"code": {"text": "anything"}}, True),
    ("procedures", {}, True),
])
def test_selection_on_the_raw_json(knowledge, part, raw, kept):
    assert relevance(knowledge)(part, raw) is kept


def test_order_hooks_do_not_validate_past_dexamethasone(knowledge):
    order_keep = relevance(knowledge, ("isatuximab", "pomalidomide", "carfilzomib"))
    past_dex = {"medicationCodeableConcept": {"text": "dexamethasone 40 mg"}}
    assert not order_keep("medicationAdministrations", past_dex)
    assert relevance(knowledge)("medicationAdministrations", past_dex)  # patient-view: a line of therapy
    assert order_keep("medicationAdministrations", {"medicationCodeableConcept": {"text": "Kyprolis"}})


def test_unhashable_values_do_not_break_the_selection(knowledge):
    odd = {"medicationCodeableConcept": {"text": ["isatuximab"], "coding": [{"system": {}, "code": []}]}}
    assert relevance(knowledge)("medicationRequests", odd) is False
