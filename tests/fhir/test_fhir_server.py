"""Against a real FHIR R4 server (Medplum's router, tests/fhir_server): the services with no prefetch.

The server pages every search by 2 (with `next` links), wants a bearer token, and serves FHIR under
/fhir/r4 on a free loopback port; it is started and stopped here.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fhir.assemble import assemble_record
from cds_service.fhir.prefetch import TEMPLATES
from cds_service.hooks.request import parse_hook_request
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.fhir.patients import EMPTY_PATIENT, SCREENED_PATIENT, TRIAL_PATIENT, count, transaction
from tests.servers import cds_service, fhir_requests, fhir_server
from tests.spec import check_cds_response, check_operation_outcome

pytestmark = pytest.mark.integration

SERVER_TOKEN = "integration-bearer-token"


@pytest.fixture(scope="module")
def ehr():
    with fhir_server("/fhir/r4", page_size=2, token=SERVER_TOKEN) as (base, _log):
        loaded = requests.post(base, json=transaction(), timeout=30,
                               headers={"Authorization": f"Bearer {SERVER_TOKEN}",
                                        "Content-Type": "application/fhir+json"})
        assert loaded.status_code == 200, loaded.text
        assert all(e["response"]["status"].startswith("20") for e in loaded.json()["entry"])
        yield base


@pytest.fixture
def runtime():
    return Runtime(config=Config(), clock=lambda: FIXED_NOW)


def hook_body(hook, patient_id, base, token=SERVER_TOKEN, fixture=None):
    body = load_fixture(fixture) if fixture else {
        "hook": hook, "hookInstance": "b4c1d2e3-0000-4000-8000-000000000001",
        "context": {"userId": "Practitioner/example", "patientId": patient_id}}
    body["context"]["patientId"] = patient_id
    body["prefetch"] = {}
    body["fhirServer"] = base
    body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "user/*.read", "subject": "dex-free-cds"}
    return body


def post(client, service, body):
    return client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")


def test_patient_view_without_prefetch_assembles_the_whole_record(ehr, runtime):
    client = create_app(runtime=runtime).test_client()
    body = hook_body("patient-view", TRIAL_PATIENT, ehr)
    response = post(client, "dex-free-patient-view", body)
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())

    runtime.fhir.cache.clear()
    fhir_requests(ehr, reset=True)
    record = assemble_record(parse_hook_request(body, "patient-view", "svc"), tuple(TEMPLATES), fhir=runtime.fhir)
    assert record.patient.id == TRIAL_PATIENT
    assert [c.id for c in record.conditions] == ["mm-1"]
    assert len(record.medication_requests) == count("MedicationRequest", TRIAL_PATIENT) == 5
    assert len(record.medication_administrations) == 2
    assert sorted(o.id for o in record.observations) == ["ecog-1", "ecog-2", "ecog-3"]
    assert [p.id for p in record.procedures] == ["asct-1"]
    assert [c.id for c in record.care_plans] == ["cp-1"]
    subject = record.research_subjects[0]
    assert subject.assignedArm == "dexamethasone-free arm"
    assert record.resolve(subject.study.reference).identifier[0].value == "NCT06561854"
    for resource in (*record.medication_requests, *record.medication_administrations):
        if resource.medicationReference is not None:
            assert record.resolve(resource.medicationReference.reference).code.coding
    assert record.sources == dict.fromkeys(TEMPLATES, "fhirServer")
    assert record.missing == {} and record.unresolved == {} and record.skipped == []
    # Paged by 2: more requests than parts, every one of them counted by the server too.
    assert record.fhir_requests > len(TEMPLATES)
    assert fhir_requests(ehr) == record.fhir_requests


def test_records_of_different_patients_do_not_mix(ehr, runtime):
    records = {pid: assemble_record(parse_hook_request(hook_body("patient-view", pid, ehr), "patient-view", "s"),
                                    tuple(TEMPLATES), fhir=runtime.fhir)
               for pid in (TRIAL_PATIENT, SCREENED_PATIENT, EMPTY_PATIENT)}
    screened = records[SCREENED_PATIENT]
    assert [m.id for m in screened.medication_requests] == ["mr-len-s"]
    # The malformed Condition is skipped (type and reason only), the vendor element repaired away.
    assert [c.id for c in screened.conditions] == ["mm-2"]
    assert [(s.resource_type, "code" in s.reason) for s in screened.skipped] == [("Condition", True)]
    assert sorted(o.id for o in screened.observations) == ["ecog-s", "vendor-s"]
    assert screened.research_subjects == [] and screened.care_plans == []
    empty = records[EMPTY_PATIENT]
    assert empty.patient.id == EMPTY_PATIENT
    assert not any(getattr(empty, f) for f in ("conditions", "medication_requests", "observations", "procedures"))


def test_order_select_then_order_sign_reads_nothing_twice(ehr, runtime):
    client = create_app(runtime=runtime).test_client()
    select = hook_body("order-select", TRIAL_PATIENT, ehr, fixture="requests/sandbox-order-select.json")
    sign = hook_body("order-sign", TRIAL_PATIENT, ehr, fixture="requests/spec-order-sign.json")
    sign["context"]["draftOrders"]["entry"][0]["resource"].pop("medicationCodeableConcept")
    sign["context"]["draftOrders"]["entry"][0]["resource"]["medicationReference"] = {"reference": "Medication/dex-4mg"}
    select["context"]["draftOrders"]["entry"][0]["resource"].pop("medicationCodeableConcept")
    select["context"]["draftOrders"]["entry"][0]["resource"]["medicationReference"] = {
        "reference": "Medication/dex-4mg"}
    fhir_requests(ehr, reset=True)
    assert post(client, "dex-free-order-select", select).status_code == 200
    assert fhir_requests(ehr) > 0
    fhir_requests(ehr, reset=True)
    assert post(client, "dex-free-order-sign", sign).status_code == 200
    assert fhir_requests(ehr) == 0


def test_a_refused_token_is_a_412_naming_every_part(ehr, runtime):
    client = create_app(runtime=runtime).test_client()
    response = post(client, "dex-free-order-sign",
                    hook_body("order-sign", TRIAL_PATIENT, ehr, token="wrong-token",
                              fixture="requests/spec-order-sign.json"))
    assert response.status_code == 412
    body = response.get_json()
    check_operation_outcome(body)
    parts = {i["expression"][0] for i in body["issue"][1:]}
    assert parts == {f"prefetch.{p}" for p in ("patient", "medicationRequests", "medicationAdministrations",
                                               "researchSubjects", "carePlans")}
    assert all("refused the access token (401)" in i["diagnostics"] for i in body["issue"][1:])
    assert "wrong-token" not in response.get_data(as_text=True)


def test_an_unknown_patient_is_a_412(ehr, runtime):
    client = create_app(runtime=runtime).test_client()
    response = post(client, "dex-free-patient-view", hook_body("patient-view", "no-such-patient", ehr))
    assert response.status_code == 412
    issues = response.get_json()["issue"]
    assert [i["expression"] for i in issues[1:]] == [["prefetch.patient"]]
    assert "404" in issues[1]["diagnostics"]


def _cycle_on(day: date) -> tuple[int, int]:
    elapsed = (day - date(2026, 9, 1)).days
    return elapsed // 28 + 1, elapsed % 28 + 1


def test_through_gunicorn_without_prefetch(ehr):
    # gunicorn runs on the real clock, so its today is bracketed by the days before and after the call
    # (a call across midnight may be either): the assertion does not depend on when the suite runs.
    paris = ZoneInfo("Europe/Paris")
    with cds_service() as (base, log):
        before = datetime.now(paris).date()
        response = requests.post(f"{base}/cds-services/dex-free-patient-view",
                                 json=hook_body("patient-view", TRIAL_PATIENT, ehr), timeout=30)
        after = datetime.now(paris).date()
        assert response.status_code == 200, response.text
        check_cds_response(response.json())
        [card] = response.json()["cards"]
    # Everything came from the server: enrolment, stratum (pomalidomide), C1D1 (isatuximab given by reference).
    found = card["extension"]["dexfree"]
    assert found | {"evidence": None, "cycle": None, "cycleDay": None} == {
        "rule": "trial-status", "study": "NCT06561854", "arm": "B", "regimen": "ICARIA",
        "cycle": None, "cycleDay": None, "evidence": None}
    assert (found["cycle"], found["cycleDay"]) in {_cycle_on(before), _cycle_on(after)}
    assert "MedicationAdministration/ma-isa-c1d1" in card["extension"]["dexfree"]["evidence"]
    lines = [json.loads(line) for line in "".join(log).splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("event") == "request" and line.get("service")]
    assert calls and calls[0]["fhirRequests"] > len(TEMPLATES)
    text = "".join(log)
    assert SERVER_TOKEN not in text and TRIAL_PATIENT not in text


def test_observations_are_searched_by_the_codes_the_rules_read(ehr, runtime):
    """A laboratory history is not read: the patient-view template asks the server for the rules' codes only."""
    headers = {"Authorization": f"Bearer {SERVER_TOKEN}", "Content-Type": "application/fhir+json"}
    patient = {"resourceType": "Patient", "id": "labs-4", "birthDate": "1960-01-01"}
    glucose = {"resourceType": "Observation", "id": "glucose-4", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
               "subject": {"reference": "Patient/labs-4"}, "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}
    ecog = {"resourceType": "Observation", "id": "ecog-4", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
            "subject": {"reference": "Patient/labs-4"}, "valueInteger": 1}
    for resource in (patient, glucose, ecog):
        assert requests.put(f"{ehr}/{resource['resourceType']}/{resource['id']}", json=resource, headers=headers,
                            timeout=30).status_code in (200, 201)
    service = runtime.registry.get("dex-free-patient-view")
    body = hook_body("patient-view", "labs-4", ehr)
    record = assemble_record(parse_hook_request(body, "patient-view", service.id), ("patient",),
                             wants=service.prefetch, fhir=runtime.fhir)
    assert [o.id for o in record.observations] == ["ecog-4"]
