"""The read-only FHIR API over plan_definitions/: the published artifacts exactly, nothing else."""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_service.fhir.assemble import MODEL_TYPES
from cds_service.knowledge.artifacts import canonical_url, canonical_version
from cds_service.knowledge.publish import npm_files, transaction_bundle
from tests.published.conftest import PUBLIC_BASE
from tests.rules.scenario import PATIENT_ID, call
from tests.spec import check_operation_outcome

FHIR_JSON = "application/fhir+json"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def valid_r4(body: dict) -> None:
    get_fhir_model_class(body["resourceType"]).model_validate(body)


def refs(knowledge) -> list[str]:
    return sorted(knowledge.artifacts.by_ref)


def test_every_artifact_is_read_exactly_as_published(client, knowledge):
    package = npm_files(knowledge)
    published = {f"{e['request']['url']}": e["resource"] for e in transaction_bundle(knowledge.artifacts)["entry"]}
    for ref in refs(knowledge):
        response = client.get(f"/fhir/{ref}")
        assert response.status_code == 200, ref
        assert response.mimetype == FHIR_JSON
        # The same bytes as the FHIR package `cds-service publish` writes, and the Bundle's resource.
        assert response.data == package[f"package/{ref.replace('/', '-')}.json"], ref
        assert response.get_json() == published[ref]


def test_head_answers_like_get_without_a_body(client):
    response = client.head("/fhir/PlanDefinition/icaria-arm-b")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON and response.data == b""


def test_search_by_canonical_url_finds_each_artifact_and_only_it(client, knowledge):
    searched = 0
    for ref in refs(knowledge):
        resource = knowledge.published.by_ref[ref]
        if "url" not in resource:
            continue  # ResearchStudy and NamingSystem have no url element in R4
        resource_type = resource["resourceType"]
        url, version = canonical_url(resource), canonical_version(resource)
        for query in (f"url={quote(url)}", f"url={quote(url)}&version={version}",
                      f"url={quote(url + '|' + version)}"):
            bundle = client.get(f"/fhir/{resource_type}?{query}").get_json()
            valid_r4(bundle)
            assert (bundle["type"], bundle["total"]) == ("searchset", 1), (ref, query)
            (entry,) = bundle["entry"]
            assert entry["resource"] == resource and entry["search"] == {"mode": "match"}
            assert entry["fullUrl"] == f"http://localhost/fhir/{ref}"
        for miss in (f"url={quote(url)}&version=9.9.9", f"url={quote(url + '|9.9.9')}",
                     f"url={quote(url + '-other')}"):
            bundle = client.get(f"/fhir/{resource_type}?{miss}").get_json()
            assert bundle["total"] == 0 and "entry" not in bundle, (ref, miss)
        searched += 1
    assert searched >= 10


def test_search_without_parameters_lists_the_type(client, knowledge):
    for resource_type in ("PlanDefinition", "ValueSet", "ResearchStudy", "NamingSystem"):
        bundle = client.get(f"/fhir/{resource_type}").get_json()
        valid_r4(bundle)
        expected = sorted(r["id"] for r in knowledge.artifacts.of_type(resource_type))
        assert [e["resource"]["id"] for e in bundle["entry"]] == expected
        assert bundle["total"] == len(expected) > 0


def test_unknown_search_parameters_are_ignored_unless_strict(client):
    url = "https://dexfree.example.org/fhir/PlanDefinition/icaria-arm-b"
    bundle = client.get(f"/fhir/PlanDefinition?url={quote(url)}&name=Anything&_count=1").get_json()
    assert bundle["total"] == 1
    # The self link says what the search was made of: the ignored parameters are not in it.
    assert bundle["link"] == [{"relation": "self", "url": f"http://localhost/fhir/PlanDefinition?url={quote(url, safe='')}"}]
    strict = client.get("/fhir/PlanDefinition?name=Anything", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and strict.mimetype == FHIR_JSON
    check_operation_outcome(strict.get_json())
    assert strict.get_json()["issue"][0]["code"] == "not-supported"
    # A type without a url element is not searched by url: its artifacts are all listed, not filtered.
    lenient = client.get("/fhir/ResearchStudy?url=https://dexfree.example.org/nothing").get_json()
    assert lenient["total"] == 1


# Every type the service reads from a patient's record; ResearchStudy is also a published artifact (the
# trial's own), read below by id only.
PATIENT_DATA_TYPES = sorted((set(MODEL_TYPES) - {"ResearchStudy"}) | {"Patient", "Encounter", "Bundle"})


@pytest.mark.parametrize("resource_type", PATIENT_DATA_TYPES)
def test_no_patient_data_type_is_served(client, resource_type):
    for path in (f"/fhir/{resource_type}/{PATIENT_ID}", f"/fhir/{resource_type}",
                 f"/fhir/{resource_type}?patient={PATIENT_ID}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == FHIR_JSON
        check_operation_outcome(response.get_json())
        assert PATIENT_ID not in response.get_data(as_text=True)


def test_the_enrolment_study_of_a_patient_is_not_served_only_the_trials_own(client, knowledge):
    (study,) = knowledge.published.of_type("ResearchStudy")
    assert client.get("/fhir/ResearchStudy/rs-study").status_code == 404
    assert [e["resource"] for e in client.get("/fhir/ResearchStudy").get_json()["entry"]] == [study]


@pytest.mark.parametrize("path", ["/fhir/PlanDefinition/no-such-plan", "/fhir/planDefinition/icaria-arm-b",
                                  "/fhir/PlanDefinition/icaria-arm-b%7C1.0.0", "/fhir/PlanDefinition/%2E%2E",
                                  "/fhir/Nonsense", "/fhir/Nonsense/x"])
def test_unknown_artifacts_are_a_404_operation_outcome(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == FHIR_JSON
    body = response.get_json()
    check_operation_outcome(body)
    valid_r4(body)
    assert body["issue"][0]["code"] == "not-found"


def test_a_path_that_leaves_the_artifacts_is_an_ordinary_404(client):
    response = client.get("/fhir/PlanDefinition/..%2F..%2Fhealthz")
    assert response.status_code == 404
    check_operation_outcome(response.get_json())


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/PlanDefinition", "/fhir/PlanDefinition/icaria-arm-b",
                                  "/regimens", "/regimens/icaria-arm-b"])
def test_writes_are_a_405_operation_outcome(locked_client, method, path):
    """Read-only, and said so even to a caller without a token (no 401 first)."""
    response = locked_client.open(path, method=method, data=json.dumps({"resourceType": "PlanDefinition"}),
                                  content_type=FHIR_JSON)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    body = response.get_json()
    check_operation_outcome(body)
    assert body["issue"][0]["code"] == "not-supported"


def test_the_published_endpoints_need_no_authentication_and_the_hooks_still_do(locked_client):
    for path in ("/fhir/metadata", "/fhir/PlanDefinition/icaria-arm-b", "/fhir/ValueSet?url=x", "/regimens",
                 "/regimens/ikema-arm-b"):
        assert locked_client.get(path).status_code == 200, path
    assert locked_client.get("/fhir/Patient/pat-42").status_code == 404
    assert locked_client.get("/cds-services").status_code == 401
    assert locked_client.post("/cds-services/dex-free-order-sign", data=json.dumps(call()),
                              content_type="application/json").status_code == 401
    # An unknown path outside the published ones keeps asking for a token.
    assert locked_client.get("/fhir/PlanDefinition/icaria-arm-b/_history/1").status_code == 401


def test_nothing_a_hook_call_sent_can_be_read_back(client, knowledge):
    """The service keeps patient data only for the call: every resource type it serves holds artifacts only."""
    body = call()
    assert client.post("/cds-services/dex-free-order-sign", data=json.dumps(body),
                       content_type="application/json").status_code == 200
    sent_ids = {r["resource"]["id"] for part in body["prefetch"].values() if isinstance(part, dict)
                for r in part.get("entry", [])} | {PATIENT_ID}
    artifact_ids = {r["id"] for r in knowledge.artifacts}
    for resource_type in sorted({r["resourceType"] for r in knowledge.artifacts}):
        served = {e["resource"]["id"] for e in client.get(f"/fhir/{resource_type}").get_json().get("entry", [])}
        assert served <= artifact_ids
        assert not served & (sent_ids - artifact_ids)


def test_capability_statement_says_what_is_served(client, knowledge):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200 and response.mimetype == FHIR_JSON
    statement = response.get_json()
    valid_r4(statement)
    assert (statement["kind"], statement["fhirVersion"], statement["status"]) == ("instance", "4.0.1", "active")
    assert statement["format"] == ["json"]
    # kind instance: an implementation (cpb-15), and it names this endpoint.
    assert statement["implementation"]["url"] == "http://localhost/fhir"
    (rest,) = statement["rest"]
    assert rest["mode"] == "server" and rest["security"]["cors"] is True
    served = {r["type"]: r for r in rest["resource"]}
    assert set(served) == {r["resourceType"] for r in knowledge.artifacts}
    for resource_type, entry in served.items():
        assert [i["code"] for i in entry["interaction"]] == ["read", "search-type"]
        has_url = any("url" in r for r in knowledge.artifacts.of_type(resource_type))
        params = {p["name"]: p["type"] for p in entry.get("searchParam", [])}
        assert params == ({"url": "uri", "version": "token"} if has_url else {}), resource_type
    assert not {"Patient", "MedicationRequest", "ResearchSubject"} & set(served)


def test_behind_a_proxy_the_urls_use_the_public_base(proxied_client):
    statement = proxied_client.get("/fhir/metadata").get_json()
    assert statement["implementation"]["url"] == PUBLIC_BASE + "/fhir"
    bundle = proxied_client.get("/fhir/PlanDefinition").get_json()
    assert {urlsplit(e["fullUrl"])[:2] for e in bundle["entry"]} == {("https", "cds.example.org")}
    assert all(e["fullUrl"].startswith(PUBLIC_BASE + "/fhir/PlanDefinition/") for e in bundle["entry"])
    assert bundle["link"][0]["url"] == PUBLIC_BASE + "/fhir/PlanDefinition"


def test_cors_is_answered_on_the_published_endpoints(client):
    for path in ("/fhir/metadata", "/regimens/icaria-arm-a"):
        response = client.get(path, headers={"Origin": "https://sandbox.cds-hooks.org"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        preflight = client.options(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                                  "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"] == "*"
