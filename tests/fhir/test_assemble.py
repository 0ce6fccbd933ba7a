"""Assembling the record: context, then prefetch, then server reads for the gaps; 412 when a need is unmet."""

from __future__ import annotations

import copy
import json
import logging

import pytest
import responses

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fhir.assemble import MissingData, assemble_record, prefetch_gap
from cds_service.fhir.client import Deadline
from cds_service.fhir.prefetch import TEMPLATES
from cds_service.hooks.request import parse_hook_request
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.fhir.support import (
    BASE,
    CARE_PLAN,
    CONDITION,
    MED_REQUEST,
    MEDICATION,
    OBSERVATION,
    PATIENT,
    RESEARCH_STUDY,
    RESEARCH_SUBJECT,
    TOKEN,
    FakeClock,
    bundle,
    gateway,
    jbody,
)
from tests.spec import check_operation_outcome

ALL_PARTS = tuple(TEMPLATES)
EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0}


def patient_view(prefetch=None, fhir_server=BASE, token=TOKEN, patient_id="pat-1"):
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": patient_id}, "prefetch": prefetch or {}}
    if fhir_server:
        body["fhirServer"] = fhir_server
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "cds"}
    return parse_hook_request(body, "patient-view", "svc")


def serve_everything(data=None):
    """Register an answer for every part's search (empty unless `data` gives its resources)."""
    data = data or {}
    responses.get(f"{BASE}/Patient/pat-1", json=PATIENT)
    for part, (kind, _) in TEMPLATES.items():
        if part != "patient":
            responses.get(f"{BASE}/{kind}", json=bundle(*data.get(part, ())))
    responses.get(f"{BASE}/Medication/dex", json=MEDICATION)
    responses.get(f"{BASE}/ResearchStudy/nct", json=RESEARCH_STUDY)


def called_types():
    return sorted(c.request.url.split("/fhir/")[1].split("?")[0] for c in responses.calls)


# --- sources in order -----------------------------------------------------------------------------

@responses.activate
def test_no_prefetch_reads_every_part_and_resolves_references():
    serve_everything({"conditions": [CONDITION], "medicationRequests": [MED_REQUEST],
                      "researchSubjects": [RESEARCH_SUBJECT], "carePlans": [CARE_PLAN],
                      "observations": [OBSERVATION]})
    record = assemble_record(patient_view(), ALL_PARTS, fhir=gateway())
    assert record.patient.id == "pat-1"
    assert [c.id for c in record.conditions] == ["c1"]
    assert record.resolve("Medication/dex").code.coding[0].code == "3264"
    assert record.resolve(record.research_subjects[0].study.reference).identifier[0].value == "NCT06561854"
    assert record.sources == dict.fromkeys(TEMPLATES, "fhirServer")
    assert record.missing == {} and record.unresolved == {}
    assert record.fhir_requests == len(TEMPLATES) + 2
    searched = [c.request for c in responses.calls if "?" in c.request.url]
    assert all(r.params["patient"] == "pat-1" for r in searched)
    assert {r.params.get("_include") for r in searched} >= {"MedicationRequest:medication", "ResearchSubject:study"}


@responses.activate
def test_partial_prefetch_reads_only_what_is_missing():
    serve_everything()
    prefetch = {"patient": PATIENT, "medicationRequests": bundle(MED_REQUEST, MEDICATION),
                "researchSubjects": bundle(RESEARCH_SUBJECT, RESEARCH_STUDY)}
    record = assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert called_types() == sorted(k for p, (k, _) in TEMPLATES.items() if p not in prefetch)
    assert record.sources["patient"] == "prefetch" and record.sources["carePlans"] == "fhirServer"
    assert record.resolve("Medication/dex") is not None  # from the prefetch Bundle, not read


@responses.activate
def test_a_null_key_and_an_operation_outcome_key_are_read_from_the_server():
    serve_everything({"carePlans": [CARE_PLAN], "observations": [OBSERVATION]})
    prefetch = {part: EMPTY for part in TEMPLATES} | {
        "patient": PATIENT, "carePlans": None,
        "observations": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}}
    record = assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert called_types() == ["CarePlan", "Observation"]
    assert [c.id for c in record.care_plans] == ["cp1"] and [o.id for o in record.observations] == ["o1"]


def test_prefetch_gaps():
    assert prefetch_gap(None) == "not prefetched"
    assert prefetch_gap({"resourceType": "OperationOutcome"}) == "the client could not prefetch it"
    wrapped = bundle({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]})
    assert prefetch_gap(wrapped) == "the client could not prefetch it"
    assert prefetch_gap(EMPTY) is None
    assert prefetch_gap(bundle({"resourceType": "OperationOutcome", "issue": [{"severity": "information"}]})) is None


@responses.activate
def test_a_complete_prefetch_makes_no_request():
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": PATIENT}
    record = assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert len(responses.calls) == 0
    assert record.fhir_requests == 0


@responses.activate
def test_a_paged_prefetch_is_completed_from_the_server():
    page2 = f"{BASE}/MedicationRequest?patient=pat-1&page=2"
    second = dict(MED_REQUEST, id="mr2")
    responses.get(page2, json=bundle(second))
    responses.get(f"{BASE}/Medication/dex", json=MEDICATION)
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": PATIENT,
                                                      "medicationRequests": bundle(MED_REQUEST, next_url=page2)}
    record = assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert [m.id for m in record.medication_requests] == ["mr1", "mr2"]
    assert record.sources["medicationRequests"] == "prefetch+fhirServer"


@responses.activate
@pytest.mark.parametrize("link", ["MedicationRequest?patient=pat-1&page=2",
                                  "http://127.0.0.1:8123/fhir/MedicationRequest?patient=pat-1&page=2"])
def test_a_relative_or_absolute_next_link_of_a_prefetch_is_followed(link):
    coded = {k: v for k, v in MED_REQUEST.items() if k != "medicationReference"} | {
        "id": "mr9", "medicationCodeableConcept": {"text": "lenalidomide"}}
    responses.get(f"{BASE}/MedicationRequest?patient=pat-1&page=2", json=bundle(coded))
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": PATIENT,
                                                      "medicationRequests": bundle(next_url=link)}
    record = assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert [m.id for m in record.medication_requests] == ["mr9"]
    assert len(responses.calls) == 1


@responses.activate
def test_a_next_link_of_a_prefetch_to_another_server_is_refused():
    prefetch = {part: EMPTY for part in TEMPLATES} | {
        "patient": PATIENT, "medicationRequests": bundle(MED_REQUEST, next_url="https://evil.test/fhir/x?page=2")}
    with pytest.raises(MissingData, match="outside fhirServer"):
        assemble_record(patient_view(prefetch), ALL_PARTS, fhir=gateway())
    assert len(responses.calls) == 0


def test_a_paged_prefetch_without_a_server_is_a_gap_not_half_the_data():
    prefetch = {part: EMPTY for part in TEMPLATES} | {
        "patient": PATIENT, "medicationRequests": bundle(MED_REQUEST, next_url=f"{BASE}/MedicationRequest?page=2")}
    request = patient_view(prefetch, fhir_server=None, token=None)
    with pytest.raises(MissingData, match="medicationRequests"):
        assemble_record(request, ["medicationRequests"], fhir=gateway())
    record = assemble_record(request, [], fhir=gateway())
    assert record.medication_requests == [] and "paged" in record.missing["medicationRequests"]


@responses.activate
def test_a_server_ignoring_include_costs_a_second_round_of_reads():
    serve_everything({"medicationRequests": [MED_REQUEST], "researchSubjects": [RESEARCH_SUBJECT]})
    record = assemble_record(patient_view(), ALL_PARTS, fhir=gateway())
    assert "Medication/dex" in called_types() and "ResearchStudy/nct" in called_types()
    assert record.resolve("ResearchStudy/nct") is not None


@responses.activate
def test_a_server_refusing_include_is_asked_without_it():
    serve_everything()
    responses.replace(responses.GET, f"{BASE}/ResearchSubject", status=400,
                      json={"resourceType": "OperationOutcome", "issue": []})
    responses.add(responses.GET, f"{BASE}/ResearchSubject", json=bundle(RESEARCH_SUBJECT))
    fhir = gateway()
    record = assemble_record(patient_view(), ALL_PARTS, fhir=fhir)
    asked = [c.request.params for c in responses.calls if "/ResearchSubject" in c.request.url]
    assert [("_include" in p) for p in asked] == [True, False]
    assert [r.id for r in record.research_subjects] == ["rs1"]
    # Remembered for that server and part: the next call does not ask it with _include again.
    fhir.cache.clear()
    responses.calls.reset()
    assemble_record(patient_view(), ALL_PARTS, fhir=fhir)
    asked = {c.request.url.split("?")[0].rsplit("/", 1)[1]: "_include" in c.request.params for c in responses.calls}
    assert asked["ResearchSubject"] is False and asked["MedicationRequest"] is True


# --- medicationReference resolution --------------------------------------------------------------

def order_sign(draft, prefetch=None, fhir_server=BASE):
    body = load_fixture("requests/spec-order-sign.json")
    body["context"]["draftOrders"] = draft
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server is None:
        body.pop("fhirServer")
    else:
        body["fhirServer"] = fhir_server
    return parse_hook_request(body, "order-sign", "svc")


def draft_order(reference, contained=None):
    order = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/pat-1"}, "medicationReference": {"reference": reference}}
    if contained:
        order["contained"] = contained
    return order


@responses.activate
def test_draft_order_medications_resolve_from_contained_the_bundle_or_the_server():
    responses.get(f"{BASE}/Medication/dex", json=MEDICATION)
    in_bundle = {"resourceType": "Medication", "id": "m-bundle", "code": {"text": "dexamethasone"}}
    draft = {"resourceType": "Bundle", "entry": [
        {"resource": draft_order("#m1", contained=[{"resourceType": "Medication", "id": "m1",
                                                    "code": {"text": "dex"}}])},
        {"fullUrl": "urn:uuid:5b7b1c7e-0b11-4b7e-9d51-3a0c7b1ee001", "resource": in_bundle},
        {"resource": dict(draft_order("urn:uuid:5b7b1c7e-0b11-4b7e-9d51-3a0c7b1ee001"), id="draft-2")},
        {"resource": dict(draft_order("Medication/dex"), id="draft-3")},
        {"resource": dict(draft_order(f"{BASE}/Medication/dex"), id="draft-4")},
    ]}
    record = assemble_record(order_sign(draft), [], fhir=gateway())
    resolved = [record.resolve(o.medicationReference.reference, within=o) for o in record.draft_orders]
    assert [m.id for m in resolved] == ["m1", "m-bundle", "dex", "dex"]
    assert called_types() == ["Medication/dex"]  # once, though two orders name it


@responses.activate
def test_unresolvable_references_are_noted_and_the_call_goes_on():
    responses.get(f"{BASE}/Medication/gone", status=404, json={"resourceType": "OperationOutcome", "issue": []})
    draft = {"resourceType": "Bundle", "entry": [
        {"resource": draft_order("#missing")},
        {"resource": dict(draft_order("Medication/gone"), id="d2")},
        {"resource": dict(draft_order("https://other.example/fhir/Medication/x"), id="d3")},
    ]}
    record = assemble_record(order_sign(draft), [], fhir=gateway())
    assert set(record.unresolved) == {"#missing", "Medication/gone", "https://other.example/fhir/Medication/x"}
    assert "404" in record.unresolved["Medication/gone"]
    assert called_types() == ["Medication/gone"]  # never the other server


def test_without_a_server_references_are_noted():
    draft = {"resourceType": "Bundle", "entry": [{"resource": draft_order("Medication/dex")}]}
    record = assemble_record(order_sign(draft, fhir_server=None), [], fhir=gateway())
    assert "no fhirServer" in record.unresolved["Medication/dex"]


# --- selection on the raw JSON, leniency -----------------------------------------------------------

def test_keep_selects_on_the_raw_json_before_validation():
    ecog = OBSERVATION
    other = dict(OBSERVATION, id="o2", code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}]})
    broken_unwanted = {"resourceType": "Observation", "id": "o3", "status": 12}  # would fail validation
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": PATIENT,
                                                      "observations": bundle(ecog, other, broken_unwanted)}

    def keep(part, raw):
        codes = {c.get("code") for c in (raw.get("code") or {}).get("coding") or []}
        return part != "observations" or "89247-1" in codes

    record = assemble_record(patient_view(prefetch, fhir_server=None, token=None), ALL_PARTS, keep=keep)
    assert [o.id for o in record.observations] == ["o1"]
    assert record.skipped == []


def test_one_malformed_or_vendor_extended_resource_does_not_fail_the_call(caplog):
    vendor = dict(CONDITION, id="c2", epicInternalFlag=True)  # an element R4 does not know
    malformed = {"resourceType": "Condition", "id": "c3", "subject": "Patient/pat-1"}
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": PATIENT,
                                                      "conditions": bundle(CONDITION, vendor, malformed)}
    with caplog.at_level(logging.WARNING):
        record = assemble_record(patient_view(prefetch, fhir_server=None, token=None), ALL_PARTS)
    assert [c.id for c in record.conditions] == ["c1", "c2"]
    assert [(s.resource_type, "subject" in s.reason) for s in record.skipped] == [("Condition", True)]
    logged = [r for r in caplog.records if r.getMessage() == "resource skipped"]
    assert logged and "pat-1" not in json.dumps(logged[0].fields)


def test_unrelated_types_in_a_bundle_are_not_parsed():
    prefetch = {part: EMPTY for part in TEMPLATES} | {
        "patient": PATIENT,
        "conditions": bundle(CONDITION, {"resourceType": "Practitioner", "id": "pr", "name": "not a list"},
                             {"resourceType": "OperationOutcome", "issue": []})}
    record = assemble_record(patient_view(prefetch, fhir_server=None, token=None), ALL_PARTS)
    assert [c.id for c in record.conditions] == ["c1"] and record.skipped == []


# --- one patient's data only ----------------------------------------------------------------------

@responses.activate
def test_resources_of_another_patient_never_enter_the_record():
    # A server that ignored the `patient` parameter answers everyone's Conditions.
    others = [dict(CONDITION, id="c-other", subject={"reference": "Patient/pat-2"}),
              dict(CONDITION, id="c-abs", subject={"reference": "https://ehr.example/fhir/Patient/pat-3"}),
              dict(CONDITION, id="c-hist", subject={"reference": "Patient/pat-1/_history/2"})]
    serve_everything({"conditions": [CONDITION, *others]})
    record = assemble_record(patient_view(), ALL_PARTS, fhir=gateway())
    assert [c.id for c in record.conditions] == ["c1", "c-hist"]
    assert [s.reason for s in record.skipped] == ["it belongs to another patient than context.patientId"] * 2


@responses.activate
def test_a_patient_read_answering_someone_else_is_a_412():
    serve_everything()
    responses.replace(responses.GET, f"{BASE}/Patient/pat-1", json=dict(PATIENT, id="pat-9"))
    with pytest.raises(MissingData, match="no valid Patient resource"):
        assemble_record(patient_view(), ALL_PARTS, fhir=gateway())


def test_a_malformed_patient_prefetch_is_a_412_not_a_record_without_patient():
    prefetch = {part: EMPTY for part in TEMPLATES} | {"patient": dict(PATIENT, gender=["female"])}
    with pytest.raises(MissingData) as caught:
        assemble_record(patient_view(prefetch, fhir_server=None, token=None), ALL_PARTS)
    assert list(caught.value.missing) == ["patient"]


# --- 412: what is missing, and why ----------------------------------------------------------------

def test_no_prefetch_and_no_server_is_a_412_naming_each_part():
    with pytest.raises(MissingData) as caught:
        assemble_record(patient_view(fhir_server=None, token=None), ["patient", "carePlans"], fhir=gateway())
    outcome = caught.value.outcome()
    assert caught.value.status == 412
    assert [i["expression"] for i in outcome["issue"][1:]] == [["prefetch.patient"], ["prefetch.carePlans"]]
    assert all("no fhirServer" in i["diagnostics"] for i in outcome["issue"][1:])


@responses.activate
@pytest.mark.parametrize(("answer", "reason", "code"), [
    ({"status": 401}, "refused the access token (401)", "security"),
    ({"status": 403}, "refused the access token (403)", "security"),
    ({"status": 500}, "answered 500", "processing"),
    ({"body": "<html>Sign in</html>", "content_type": "text/html"}, "HTML", "processing"),
    ({"body": '{"resourceType": "Bundle", "entry": [', "content_type": "application/fhir+json"},
     "not valid JSON", "processing"),
    ({"body": ConnectionRefusedError("refused")}, "could not be reached", "transient"),
])
def test_a_failing_server_read_of_a_needed_part_is_a_412(answer, reason, code):
    import requests as http

    serve_everything()
    if isinstance(answer.get("body"), Exception):
        answer = {"body": http.ConnectionError("refused")}
    responses.replace(responses.GET, f"{BASE}/CarePlan", **answer)
    with pytest.raises(MissingData) as caught:
        assemble_record(patient_view(), ALL_PARTS, fhir=gateway())
    issues = caught.value.outcome()["issue"]
    assert reason in issues[0]["diagnostics"] and "carePlans" in issues[0]["diagnostics"]
    assert issues[1] == {"severity": "error", "code": code, "diagnostics": issues[1]["diagnostics"],
                         "expression": ["prefetch.carePlans"]}
    assert BASE not in json.dumps(issues) and TOKEN not in json.dumps(issues)


@responses.activate
def test_the_patient_not_found_is_a_412():
    serve_everything()
    responses.replace(responses.GET, f"{BASE}/Patient/pat-1", status=404,
                      json={"resourceType": "OperationOutcome", "issue": []})
    with pytest.raises(MissingData, match=r"patient \(not found on the FHIR server \(404\)\)"):
        assemble_record(patient_view(), ALL_PARTS, fhir=gateway())


@responses.activate
def test_endless_paging_of_a_needed_part_is_a_412_not_a_decision_on_part_of_it():
    serve_everything()

    def endless(request):
        page = int(request.params.get("page", "1"))
        return 200, {}, jbody(bundle(dict(OBSERVATION, id=f"o{page}"),
                                     next_url=f"{BASE}/Observation?patient=pat-1&page={page + 1}"))

    responses.replace(responses.GET, f"{BASE}/Observation", body="")
    responses.remove(responses.GET, f"{BASE}/Observation")
    responses.add_callback(responses.GET, f"{BASE}/Observation", callback=endless)
    with pytest.raises(MissingData, match="CDS_FHIR_MAX_PAGES"):
        assemble_record(patient_view(), ALL_PARTS, fhir=gateway(fhir_max_pages=5))
    record = assemble_record(patient_view(), [], fhir=gateway(fhir_max_pages=5))
    assert record.observations == [] and "observations" in record.missing


@responses.activate
def test_the_deadline_is_shared_by_all_reads_of_a_call():
    clock = FakeClock()
    serve_everything()

    def slow_patient(request):
        clock.advance(5.0)  # the first read takes longer than the whole budget (4 s)
        return 200, {}, jbody(PATIENT)

    responses.remove(responses.GET, f"{BASE}/Patient/pat-1")
    responses.add_callback(responses.GET, f"{BASE}/Patient/pat-1", callback=slow_patient)
    with pytest.raises(MissingData) as caught:
        assemble_record(patient_view(), ALL_PARTS, fhir=gateway(clock))
    # The patient's answer came after the budget too: nothing is decided on data that came too late.
    assert set(caught.value.missing) == set(ALL_PARTS)
    assert all(kind == "deadline" for _, kind in caught.value.missing.values())
    assert called_types() == ["Patient/pat-1"]  # nothing was asked once the budget was spent


@responses.activate
def test_an_explicit_deadline_is_used():
    clock = FakeClock()
    serve_everything()
    spent = Deadline(clock() - 1, clock, clock.sleep)
    with pytest.raises(MissingData, match="time budget"):
        assemble_record(patient_view(), ["patient"], fhir=gateway(clock), deadline=spent)
    assert len(responses.calls) == 0


# --- through the app: 403, 412, cache --------------------------------------------------------------

@pytest.fixture
def fhir_app():
    def build(**settings):
        clock = FakeClock()
        config = Config(**settings)
        runtime = Runtime(config=config, clock=lambda: FIXED_NOW, fhir=gateway(clock, **settings))
        return create_app(runtime=runtime).test_client()
    return build


def post(client, service, body):
    return client.post(f"/cds-services/{service}", data=json.dumps(body), content_type="application/json")


def with_server(body, token=TOKEN):
    body = copy.deepcopy(body)
    body["fhirServer"] = BASE
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "user/*.read", "subject": "cds"}
    else:
        body.pop("fhirAuthorization", None)
    return body


@responses.activate
@pytest.mark.parametrize("prefetched", [False, True])
def test_a_disallowed_fhir_server_is_a_403_and_no_connection_is_made(fhir_app, prefetched):
    client = fhir_app()
    body = load_fixture("requests/spec-order-sign.json")
    if not prefetched:
        body["prefetch"] = {}
    body["fhirServer"] = "https://ehr.evil.test/fhir"
    response = post(client, "dex-free-order-sign", body)
    assert response.status_code == 403
    issue = check_operation_outcome(response.get_json())
    assert issue["code"] == "forbidden" and issue["expression"] == ["fhirServer"]
    assert len(responses.calls) == 0


@responses.activate
def test_order_select_then_order_sign_reads_the_server_once(fhir_app):
    serve_everything({"medicationRequests": [MED_REQUEST], "researchSubjects": [RESEARCH_SUBJECT]})
    client = fhir_app()
    select = with_server(load_fixture("requests/sandbox-order-select.json"))
    select["prefetch"] = {}
    sign = with_server(load_fixture("requests/spec-order-sign.json"))
    sign["prefetch"] = {}
    assert post(client, "dex-free-order-select", select).status_code == 200
    first = len(responses.calls)
    assert first >= 5
    assert post(client, "dex-free-order-sign", sign).status_code == 200
    assert len(responses.calls) == first


@responses.activate
def test_the_cache_is_never_shared_between_tokens(fhir_app):
    serve_everything()
    client = fhir_app()
    body = load_fixture("requests/spec-order-sign.json")
    body["prefetch"] = {}
    assert post(client, "dex-free-order-sign", with_server(body, "token-of-user-a")).status_code == 200
    first = len(responses.calls)
    assert post(client, "dex-free-order-sign", with_server(body, "token-of-user-b")).status_code == 200
    assert len(responses.calls) == 2 * first
    assert post(client, "dex-free-order-sign", with_server(body, None)).status_code == 200
    assert len(responses.calls) == 3 * first
    tokens = [c.request.headers.get("Authorization") for c in responses.calls]
    assert tokens[:first] == ["Bearer token-of-user-a"] * first
    assert tokens[first:2 * first] == ["Bearer token-of-user-b"] * first
    assert tokens[2 * first:] == [None] * first


@responses.activate
def test_the_cache_expires(fhir_app):
    serve_everything()
    client = fhir_app(cache_ttl_seconds=0)
    body = with_server(load_fixture("requests/spec-order-sign.json"))
    body["prefetch"] = {}
    post(client, "dex-free-order-sign", body)
    first = len(responses.calls)
    post(client, "dex-free-order-sign", body)
    assert len(responses.calls) == 2 * first


@responses.activate
def test_a_412_through_the_app_names_the_parts(fhir_app):
    serve_everything()
    responses.replace(responses.GET, f"{BASE}/Patient/pat-1", status=401)
    responses.replace(responses.GET, f"{BASE}/CarePlan", status=401)
    body = with_server(load_fixture("requests/spec-order-sign.json"))
    body["prefetch"] = {}
    response = post(fhir_app(), "dex-free-order-sign", body)
    assert response.status_code == 412
    issues = response.get_json()["issue"]
    check_operation_outcome(response.get_json())
    assert {tuple(i["expression"]) for i in issues[1:]} == {("prefetch.patient",), ("prefetch.carePlans",)}
    assert TOKEN not in response.get_data(as_text=True)


@responses.activate
def test_the_sandbox_blank_order_select_still_gets_no_cards(fhir_app):
    response = post(fhir_app(), "dex-free-order-select", load_fixture("requests/sandbox-order-select-blank.json"))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert len(responses.calls) == 0


@responses.activate
def test_the_sandbox_blank_order_select_without_prefetch_reads_and_answers_no_cards(fhir_app):
    serve_everything()
    body = load_fixture("requests/sandbox-order-select-blank.json")
    body["prefetch"] = {}
    body["fhirServer"] = BASE
    response = post(fhir_app(), "dex-free-order-select", body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
