"""Contract tests of every endpoint against the CDS Hooks 2.0.1 rules, and every bad-input case."""

from __future__ import annotations

import json
import logging

import pytest

from cds_service.app import create_app
from cds_service.hooks.registry import Registry, ServiceDefinition
from cds_service.hooks.response import card
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW
from tests.spec import check_cds_response, check_discovery, check_operation_outcome

SERVICE_IDS = {"dex-free-order-select": "order-select", "dex-free-order-sign": "order-sign",
               "dex-free-patient-view": "patient-view"}
FIXTURE_OF = {"order-select": "requests/sandbox-order-select.json", "order-sign": "requests/spec-order-sign.json",
              "patient-view": "requests/spec-patient-view.json"}


def post(client, url, body, **kwargs):
    return client.post(url, data=json.dumps(body), content_type="application/json", **kwargs)


def test_discovery_lists_one_service_per_hook_and_passes_the_spec(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    check_discovery(doc)
    assert {s["id"]: s["hook"] for s in doc["services"]} == SERVICE_IDS
    for service in doc["services"]:
        assert service["title"] and len(service["description"]) > 80
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        # Each service names the published artifacts its rules come from.
        published = service["extension"]["dexfree"]
        assert published["rule"].endswith("/PlanDefinition/dex-free-arm-b-rule|1.0.0")
        assert published["study"].endswith("/ResearchStudy/nct06561854|1.0.0")


@pytest.mark.parametrize(("service_id", "hook"), SERVICE_IDS.items())
def test_each_service_answers_a_spec_shaped_call(client, request_fixture, service_id, hook):
    response = post(client, f"/cds-services/{service_id}", request_fixture(FIXTURE_OF[hook]))
    assert response.status_code == 200, response.get_json()
    check_cds_response(response.get_json())


def test_sandbox_blank_order_select_gets_no_cards_not_an_error(client, request_fixture):
    response = post(client, "/cds-services/dex-free-order-select",
                    request_fixture("requests/sandbox-order-select-blank.json"))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_unknown_fields_are_ignored(client, request_fixture):
    body = request_fixture("requests/spec-order-sign.json")
    body["vendorExtra"] = {"anything": [1, 2]}
    body["context"]["epicSpecific"] = "x"
    assert post(client, "/cds-services/dex-free-order-sign", body).status_code == 200


def test_prefetch_key_sent_as_null_is_treated_as_absent(client, request_fixture):
    body = request_fixture("requests/spec-order-sign.json")
    body["prefetch"]["researchSubjects"] = None
    body.pop("fhirServer")
    response = post(client, "/cds-services/dex-free-order-sign", body)
    assert response.status_code == 412
    assert "researchSubjects" in check_operation_outcome(response.get_json())["diagnostics"]


def test_a_patient_in_no_study_needs_no_other_part(client, request_fixture):
    # The prefetched enrolments are none: no card can come, so a missing care plan part is not a 412.
    body = request_fixture("requests/spec-order-sign.json")
    assert body["prefetch"]["researchSubjects"].get("entry", []) == []
    body["prefetch"]["carePlans"] = None
    body.pop("fhirServer")
    response = post(client, "/cds-services/dex-free-order-sign", body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


# --- bad input: each case a clear OperationOutcome, never a stack trace -------------------------

def _without(path: str):
    def change(body):
        *parents, last = path.split(".")
        target = body
        for part in parents:
            target = target[part]
        del target[last]
    return change


@pytest.mark.parametrize(("change", "field"), [
    (_without("hook"), "hook"),
    (_without("hookInstance"), "hookInstance"),
    (_without("context"), "context"),
    (_without("context.patientId"), "context.patientId"),
    (_without("context.userId"), "context.userId"),
    (_without("context.draftOrders"), "context.draftOrders"),
    (lambda b: b["context"].update(patientId=7), "context.patientId"),
    (lambda b: b["context"].update(patientId="  "), "context.patientId"),
    (lambda b: b["context"].update(draftOrders={"resourceType": "Patient"}), "context.draftOrders"),
    (lambda b: b["context"].update(draftOrders=[]), "context.draftOrders"),
    (lambda b: b.update(fhirServer="not a url"), "fhirServer"),
    (lambda b: b.update(fhirAuthorization={"token_type": "Bearer"}), "fhirAuthorization.access_token"),
    (lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "MAC"}),
     "fhirAuthorization.token_type"),
    (lambda b: b.update(fhirAuthorization={"access_token": "abc\r\nX-Injected: 1", "token_type": "Bearer"}),
     "fhirAuthorization.access_token"),
    (lambda b: b.update(fhirAuthorization={"access_token": "two words", "token_type": "Bearer"}),
     "fhirAuthorization.access_token"),
    (lambda b: b.update(prefetch=[]), "prefetch"),
    (lambda b: b["prefetch"].update(patient="Patient/1"), "prefetch.patient"),
])
def test_missing_or_wrong_field_is_a_400_naming_it(client, request_fixture, change, field):
    body = request_fixture("requests/spec-order-sign.json")
    change(body)
    response = post(client, "/cds-services/dex-free-order-sign", body)
    assert response.status_code == 400
    issue = check_operation_outcome(response.get_json())
    assert issue["expression"] == [field]
    assert field in issue["diagnostics"] or field.split(".")[-1] in issue["diagnostics"]


def test_order_select_needs_selections(client, request_fixture):
    body = request_fixture("requests/sandbox-order-select.json")
    del body["context"]["selections"]
    response = post(client, "/cds-services/dex-free-order-select", body)
    assert response.status_code == 400
    assert check_operation_outcome(response.get_json())["expression"] == ["context.selections"]


def test_fhir_authorization_without_fhir_server_is_a_400(client, request_fixture):
    body = request_fixture("requests/spec-patient-view.json")
    del body["fhirServer"]
    response = post(client, "/cds-services/dex-free-patient-view", body)
    assert response.status_code == 400
    assert check_operation_outcome(response.get_json())["expression"] == ["fhirServer"]


def test_access_token_never_echoed_in_errors(client, request_fixture):
    body = request_fixture("requests/spec-patient-view.json")
    del body["fhirServer"]
    response = post(client, "/cds-services/dex-free-patient-view", body)
    assert "some-opaque-fhir-access-token" not in response.get_data(as_text=True)


@pytest.mark.parametrize("payload", ["{", "[1,", "", "   ", '{"hook": "order-sign",}', "\x00"])
def test_malformed_json_is_a_400(client, payload):
    response = client.post("/cds-services/dex-free-order-sign", data=payload, content_type="application/json")
    assert response.status_code == 400
    check_operation_outcome(response.get_json())


@pytest.mark.parametrize("body", [[], "text", 12, None])
def test_body_that_is_not_an_object_is_a_400(client, body):
    assert post(client, "/cds-services/dex-free-order-sign", body).status_code == 400


def test_unknown_service_is_a_404(client, request_fixture):
    response = post(client, "/cds-services/no-such-service", request_fixture("requests/spec-order-sign.json"))
    assert response.status_code == 404
    assert check_operation_outcome(response.get_json())["code"] == "not-found"


def test_hook_that_does_not_match_the_service_is_a_400(client, request_fixture):
    response = post(client, "/cds-services/dex-free-patient-view", request_fixture("requests/spec-order-sign.json"))
    assert response.status_code == 400
    issue = check_operation_outcome(response.get_json())
    assert issue["expression"] == ["hook"] and "patient-view" in issue["diagnostics"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_a_415(client, request_fixture, content_type):
    data = json.dumps(request_fixture("requests/spec-order-sign.json"))
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/cds-services/dex-free-order-sign", data=data, headers=headers)
    assert response.status_code == 415
    check_operation_outcome(response.get_json())


def test_fhir_json_content_type_with_charset_is_accepted(client, request_fixture):
    data = json.dumps(request_fixture("requests/spec-order-sign.json"))
    response = client.post("/cds-services/dex-free-order-sign", data=data,
                           content_type="application/fhir+json; charset=utf-8")
    assert response.status_code == 200


def test_body_over_the_limit_is_a_413(request_fixture):
    from cds_service.config import Config

    small = create_app(runtime=Runtime(config=Config(max_body_bytes=2048), clock=lambda: FIXED_NOW)).test_client()
    body = request_fixture("requests/spec-order-sign.json")
    body["padding"] = "x" * 4096
    response = post(small, "/cds-services/dex-free-order-sign", body)
    assert response.status_code == 413
    assert check_operation_outcome(response.get_json())["code"] == "too-costly"


def test_too_many_resources_is_a_413(request_fixture):
    from cds_service.config import Config

    app = create_app(runtime=Runtime(config=Config(max_resources=3), clock=lambda: FIXED_NOW))
    body = request_fixture("requests/spec-order-sign.json")
    body["prefetch"]["carePlans"]["entry"] = [{"resource": {"resourceType": "CarePlan", "id": str(i),
                                                            "status": "active", "intent": "plan",
                                                            "subject": {"reference": "Patient/pat-1"}}}
                                              for i in range(5)]
    response = post(app.test_client(), "/cds-services/dex-free-order-sign", body)
    assert response.status_code == 413
    assert "more than 3 FHIR resources" in check_operation_outcome(response.get_json())["diagnostics"]


def test_unexpected_exception_is_a_500_with_an_error_id_that_is_logged(request_fixture, caplog):
    def explode(call):
        raise RuntimeError("secret internal detail")

    broken = ServiceDefinition(id="dex-free-order-sign", hook="order-sign", title="t", description="d",
                               prefetch={}, evaluate=explode)
    from cds_service.config import Config

    app = create_app(runtime=Runtime(config=Config(), registry=Registry([broken]), clock=lambda: FIXED_NOW))
    with caplog.at_level(logging.ERROR):
        response = post(app.test_client(), "/cds-services/dex-free-order-sign",
                        request_fixture("requests/spec-order-sign.json"))
    assert response.status_code == 500
    issue = check_operation_outcome(response.get_json())
    assert "secret internal detail" not in response.get_data(as_text=True)
    error_id = issue["diagnostics"].split()[2].rstrip(";")
    logged = [r for r in caplog.records if getattr(r, "fields", {}).get("errorId") == error_id]
    assert logged and logged[0].exc_info


def test_card_breaking_the_spec_is_a_500_not_sent(request_fixture):
    def bad_card(call):
        return [{"summary": "x", "indicator": "urgent", "source": {"label": "l"}}]

    broken = ServiceDefinition(id="dex-free-order-sign", hook="order-sign", title="t", description="d",
                               prefetch={}, evaluate=bad_card)
    from cds_service.config import Config

    app = create_app(runtime=Runtime(config=Config(), registry=Registry([broken]), clock=lambda: FIXED_NOW))
    response = post(app.test_client(), "/cds-services/dex-free-order-sign",
                    request_fixture("requests/spec-order-sign.json"))
    assert response.status_code == 500


def test_cards_from_a_service_are_checked_and_completed(request_fixture):
    def one_card(call):
        return [card(summary="Check this", indicator="info", source={"label": "Dex-Free CDS"},
                     detail=None, links=[])]

    svc = ServiceDefinition(id="s", hook="order-sign", title="t", description="d", prefetch={}, evaluate=one_card)
    from cds_service.config import Config

    app = create_app(runtime=Runtime(config=Config(), registry=Registry([svc]), clock=lambda: FIXED_NOW))
    body = post(app.test_client(), "/cds-services/s", request_fixture("requests/spec-order-sign.json")).get_json()
    check_cds_response(body)
    assert body["cards"][0].keys() == {"uuid", "summary", "indicator", "source"}


def test_unknown_route_and_wrong_method_get_operation_outcomes(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    check_operation_outcome(response.get_json())
    response = client.delete("/cds-services")
    assert response.status_code == 405
    check_operation_outcome(response.get_json())
    response = client.get("/cds-services/dex-free-order-sign")
    assert response.status_code == 405


# --- feedback -------------------------------------------------------------------------------------

SPEC_FEEDBACK = {"feedback": [
    {"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "accepted",
     "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
     "outcomeTimestamp": "2021-12-11T10:05:31Z"},
    {"card": "9368d37b-283f-44a0-93ea-547cebab93ed", "outcome": "overridden",
     "overrideReason": {"reason": {"code": "d7ecf885", "system": "https://example.com/cds-hooks/override-reason-system"},
                        "userComment": "A comment entered by the clinician."},
     "outcomeTimestamp": "2020-12-11T00:00:00Z"},
    {"card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb", "outcome": "overridden",
     "outcomeTimestamp": "2020-12-11T00:00:00Z"},
]}


def test_feedback_in_the_specification_shape_is_accepted(client):
    response = post(client, "/cds-services/dex-free-order-sign/feedback", SPEC_FEEDBACK)
    assert response.status_code == 200
    assert response.get_json()["received"] == 3


@pytest.mark.parametrize(("body", "field"), [
    ({}, "feedback"),
    ({"feedback": {}}, "feedback"),
    ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2021-12-11T10:05:31Z"}]}, "feedback[0].card"),
    ({"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2021-12-11T10:05:31Z"}]},
     "feedback[0].outcome"),
    ({"feedback": [{"card": "c", "outcome": "overridden"}]}, "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
     "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "accepted", "acceptedSuggestions": ["s"],
                    "outcomeTimestamp": "2021-12-11T10:05:31Z"}]}, "feedback[0].acceptedSuggestions"),
])
def test_bad_feedback_is_a_400_naming_the_field(client, body, field):
    response = post(client, "/cds-services/dex-free-order-sign/feedback", body)
    assert response.status_code == 400
    assert check_operation_outcome(response.get_json())["expression"] == [field]


def test_feedback_for_an_unknown_service_is_a_404(client):
    assert post(client, "/cds-services/nope/feedback", SPEC_FEEDBACK).status_code == 404


# --- health and CORS ------------------------------------------------------------------------------

def test_healthz_reports_version_and_features(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["version"]
    assert body["features"]["authentication"].startswith("disabled")
    # The embedded default: this machine's FHIR servers only, on any port.
    assert body["features"]["fhirServersAllowed"] == ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/cds-services"), ("POST", "/cds-services/dex-free-order-sign"),
    ("POST", "/cds-services/dex-free-order-sign/feedback"), ("GET", "/healthz"),
])
def test_cors_preflight_allows_authorization_and_content_type(client, method, url):
    response = client.options(url, headers={"Origin": "https://sandbox.cds-hooks.org",
                                            "Access-Control-Request-Method": method,
                                            "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert method in response.headers["Access-Control-Allow-Methods"]


def test_cors_headers_on_answers_and_errors(client):
    for response in (client.get("/cds-services", headers={"Origin": "https://x.example"}),
                     post(client, "/cds-services/nope", {}, headers={"Origin": "https://x.example"})):
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_with_an_origin_allowlist(request_fixture):
    from cds_service.config import Config

    app = create_app(runtime=Runtime(config=Config(cors_origins=("https://ehr.example",)), clock=lambda: FIXED_NOW))
    client = app.test_client()
    ok = client.get("/cds-services", headers={"Origin": "https://ehr.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://ehr.example"
    assert "Origin" in ok.headers["Vary"]
    other = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
