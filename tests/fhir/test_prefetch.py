"""Prefetch templates stay inside the specification's recommended query subset; server reads may do more."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from cds_service.fhir.prefetch import SERVER_INCLUDES, STUDY_KEY, TEMPLATES, render, server_queries
from cds_service.services import SERVICES

READ = re.compile(r"^[A-Z][A-Za-z]+/\{\{context\.patientId\}\}$")
SEARCH = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")


def test_templates_are_instance_reads_or_searches_by_patient_reference():
    for part, (kind, template) in TEMPLATES.items():
        if READ.match(template):
            assert template.startswith(f"{kind}/"), part
            continue
        match = SEARCH.match(template)
        assert match and match.group(1) == kind, part
        params = parse_qsl(match.group(2))
        assert ("patient", "{{context.patientId}}") in params, part
        # No _include, _revinclude, chaining or modifiers: outside the recommended subset.
        assert all(not name.startswith(("_include", "_revinclude")) and ":" not in name and "." not in name
                   for name, _ in params), part


def test_every_record_part_the_services_need_has_a_template():
    for service in SERVICES:
        assert set(service.needs) <= set(TEMPLATES)
        assert set(service.prefetch) - set(TEMPLATES) == {STUDY_KEY}
        assert all(service.prefetch[p] == TEMPLATES[p][1] for p in service.prefetch if p != STUDY_KEY)


def test_the_study_key_is_a_token_search_by_the_knowledge_s_identifier(runtime, knowledge):
    for service in runtime.registry:
        template = service.prefetch[STUDY_KEY]
        match = SEARCH.match(template)
        assert match and match.group(1) == "ResearchStudy"
        # Token equality on the identifier, the study's own NCT number; no patient token (not patient-specific).
        assert parse_qsl(match.group(2)) == [("identifier", knowledge.study.nct_id)]
        assert "{{" not in template


def test_the_issue_s_resources_are_all_asked_for():
    kinds = {kind for kind, _ in TEMPLATES.values()}
    assert kinds >= {"Patient", "Condition", "MedicationRequest", "MedicationAdministration", "Observation",
                     "Procedure", "ResearchSubject", "CarePlan"}
    # Past and stopped orders count (prior therapies): no status filter anywhere.
    assert not any("status" in template for _, template in TEMPLATES.values())


def test_the_patient_id_is_url_encoded():
    assert render("Condition?patient={{context.patientId}}", "a b&c=d") == "Condition?patient=a%20b%26c%3Dd"
    assert render("Patient/{{context.patientId}}", "x/../y") == "Patient/x%2F..%2Fy"


def test_server_queries_add_include_and_count_with_a_plain_fallback():
    preferred, plain = server_queries("researchSubjects", "p1")
    assert dict(parse_qsl(preferred.split("?")[1])) == {"patient": "p1", "_count": "200",
                                                         "_include": "ResearchSubject:study"}
    assert "_include" not in plain
    assert server_queries("patient", "p1") == ("Patient/p1",)
    assert server_queries("observations", "p1") == ("Observation?patient=p1&_count=200",)
    assert set(SERVER_INCLUDES) <= set(TEMPLATES)
