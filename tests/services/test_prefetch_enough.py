"""Prefetch must be enough: a trial patient's call whose prefetch is rendered from discovery reads nothing.

The prefetch is made as an EHR makes it: each template of GET /cds-services rendered for the patient and
answered from the test data; `fhirServer` points at a server that counts the requests it gets (and
answers every one 404, so a read would also show in the cards).
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import parse_qsl

import pytest
import responses

from cds_service.fhir.prefetch import STUDY_KEY, render
from tests.fhir.support import TOKEN
from tests.rules.scenario import (
    PATIENT_ID,
    care_plan,
    day_of,
    dex_order,
    patient,
    research_study,
    research_subject,
)
from tests.spec import check_cds_response

_PATIENT_FIELDS = ("subject", "patient", "individual")
# A server of its own: a read another test's thread makes late to tests.fhir.support.BASE is not counted here.
BASE = "http://127.0.0.1:8179/fhir"


def _answer(query: str, data: list[dict]) -> dict | None:
    """What a FHIR server holding `data` answers to a read or a search of the recommended subset."""
    if "?" not in query:
        kind, _, rid = query.partition("/")
        return next((r for r in data if r["resourceType"] == kind and r["id"] == rid), None)
    kind, _, params = query.partition("?")
    found = [r for r in data if r["resourceType"] == kind]
    for name, value in parse_qsl(params):
        if name == "patient":
            found = [r for r in found if any((r.get(f) or {}).get("reference") == f"Patient/{value}"
                                             for f in _PATIENT_FIELDS)]
        elif name == "identifier":
            found = [r for r in found if any(i.get("value") == value for i in r.get("identifier") or [])]
        elif name == "code":
            tokens = {tuple(t.split("|", 1)) for t in value.split(",")}
            found = [r for r in found if any((c.get("system"), c.get("code")) in tokens
                                             for c in (r.get("code") or {}).get("coding") or [])]
        else:
            raise AssertionError(f"a template parameter outside what this test server knows: {name}")
    return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
            "entry": [{"resource": copy.deepcopy(r)} for r in found]}


def _standard_data(subject: dict | None = None, studies: tuple[dict, ...] | None = None) -> list[dict]:
    """The standard arm B patient on ICARIA from 2026-09-01; today (2026-11-24) is cycle 4 day 1."""
    return [patient(), subject or research_subject(), *(studies if studies is not None else (research_study(),)),
            care_plan()]


def _discovery(client) -> dict[str, dict[str, str]]:
    body = client.get("/cds-services").get_json()
    return {service["id"]: service["prefetch"] for service in body["services"]}


def _hook_call(client, service_id: str, templates: dict[str, str], data: list[dict],
               skip: tuple[str, ...] = ()) -> dict:
    prefetch = {}
    for key, template in templates.items():
        query = render(template, PATIENT_ID)
        assert "{{" not in query, key
        if key not in skip:
            prefetch[key] = _answer(query, data)
    hook = {"dex-free-order-sign": "order-sign", "dex-free-order-select": "order-select"}.get(service_id,
                                                                                             "patient-view")
    context: dict = {"userId": "Practitioner/dr-1", "patientId": PATIENT_ID}
    if hook != "patient-view":
        order = dex_order(day_of(4, 1))
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": order}]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{order['id']}"]
    body = {"hook": hook, "hookInstance": "5a5d4c8e-3a35-4f7e-9d0c-1f1f1f1f1f1f", "context": context,
            "prefetch": prefetch, "fhirServer": BASE,
            "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "user/*.read", "subject": "dexfree"}}
    response = client.post(f"/cds-services/{service_id}", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())
    return response.get_json()


def _count_every_request() -> None:
    responses.add(responses.GET, re.compile(r"http://127\.0\.0\.1:8179/.*"), status=404,
                  json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})


def _reads() -> list[str]:
    """The requests this module's FHIR server received."""
    return [c.request.url for c in responses.calls if c.request.url.startswith(BASE)]


def _rules(payload: dict) -> list[str]:
    return [c["extension"]["dexfree"]["rule"] for c in payload["cards"]]


@pytest.mark.parametrize("service_id", ["dex-free-order-sign", "dex-free-order-select", "dex-free-patient-view"])
@responses.activate
def test_complete_prefetch_from_discovery_makes_no_fhir_read(client, service_id):
    _count_every_request()
    templates = _discovery(client)[service_id]
    assert STUDY_KEY in templates
    payload = _hook_call(client, service_id, templates, _standard_data())
    assert _reads() == []
    expected = ["trial-status"] if service_id == "dex-free-patient-view" else ["dex-after-cycle-2"]
    assert _rules(payload) == expected


@responses.activate
def test_without_the_study_key_the_study_is_still_read_from_fhir_server(client):
    templates = _discovery(client)["dex-free-order-sign"]
    responses.get(f"{BASE}/ResearchStudy/rs-study", json=research_study())
    payload = _hook_call(client, "dex-free-order-sign", templates, _standard_data(), skip=(STUDY_KEY,))
    assert _reads() == [f"{BASE}/ResearchStudy/rs-study"]
    assert _rules(payload) == ["dex-after-cycle-2"]


@responses.activate
def test_a_study_key_answered_with_no_study_falls_back_to_reading_it(client):
    templates = _discovery(client)["dex-free-order-sign"]
    responses.get(f"{BASE}/ResearchStudy/rs-study", json=research_study())
    payload = _hook_call(client, "dex-free-order-sign", templates, _standard_data(studies=()))
    assert len(_reads()) == 1 and _rules(payload) == ["dex-after-cycle-2"]


@responses.activate
def test_a_study_key_answered_with_several_studies_resolves_the_subject_s_own(client):
    _count_every_request()
    templates = _discovery(client)["dex-free-order-sign"]
    # A server holding a duplicate of the study (another id, same NCT number) answers both.
    studies = (research_study(study_id="duplicate"), research_study())
    payload = _hook_call(client, "dex-free-order-sign", templates, _standard_data(studies=studies))
    assert not _reads() and _rules(payload) == ["dex-after-cycle-2"]


@responses.activate
def test_a_logical_study_reference_is_resolved_by_the_prefetched_study_s_identifier(client):
    _count_every_request()
    templates = _discovery(client)["dex-free-order-sign"]
    # The EHR names the study by its local protocol number; the prefetched study carries both numbers.
    study = research_study()
    study["identifier"].append({"system": "urn:aphp:protocols", "value": "APHP-2024-0117"})
    subject = research_subject()
    subject["study"] = {"identifier": {"system": "urn:aphp:protocols", "value": "APHP-2024-0117"}}
    payload = _hook_call(client, "dex-free-order-sign", templates, _standard_data(subject, (study,)))
    assert not _reads() and _rules(payload) == ["dex-after-cycle-2"]
