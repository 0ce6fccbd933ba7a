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


def test_observation_searches_ask_only_for_the_codes_the_rules_read(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    template = services["dex-free-patient-view"]["prefetch"]["observations"]
    query, _, codes = template.partition("&code=")
    assert query == "Observation?patient={{context.patientId}}"
    tokens = set(codes.split(","))
    assert {"http://loinc.org|89247-1", "http://loinc.org|63895-7", "http://loinc.org|97509-4"} <= tokens
    assert not any("LA96" in t for t in tokens)  # ECOG answers are not Observation codes
    # The other parts are unchanged.
    assert services["dex-free-patient-view"]["prefetch"]["conditions"] == "Condition?patient={{context.patientId}}"


def test_the_service_reads_observations_with_the_same_filter(knowledge):
    from cds_service.fhir.prefetch import server_queries
    from cds_service.knowledge.relevance import narrowed

    template = narrowed(knowledge)("observations", "Observation?patient={{context.patientId}}")
    queries = server_queries("observations", "p 1", template)
    assert queries[0].startswith("Observation?patient=p%201&code=http://loinc.org|")
    assert "_count=" in queries[0]
