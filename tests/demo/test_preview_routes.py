"""Where the preview is on, what it serves, and the demo FHIR endpoint's answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.errors import CdsError
from cds_service.preview.routes import STATIC
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW

ISSUERS = Path("/etc/cds/issuers.json")


def refuse(_authorization, _url):
    raise CdsError(401, "no token", code="login")


def client_for(knowledge, *, jwt: bool, preview: bool | None):
    config = Config(jwt_issuers=ISSUERS if jwt else None, preview=preview)
    runtime = Runtime(config=config, knowledge=knowledge, clock=lambda: FIXED_NOW,
                      authenticator=refuse if jwt else None)
    return create_app(runtime=runtime).test_client()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, True), ({"CDS_PREVIEW": "false"}, False), ({"CDS_PREVIEW": "true"}, True),
    ({"CDS_JWT_ISSUERS": "/etc/cds/issuers.json"}, False),
    ({"CDS_JWT_ISSUERS": "/etc/cds/issuers.json", "CDS_PREVIEW": "true"}, True),
    ({"CDS_JWT_ISSUERS": "/etc/cds/issuers.json", "CDS_PREVIEW": "no"}, False),
])
def test_preview_is_on_in_open_mode_and_off_with_jwt_unless_asked(env, expected):
    assert Config.from_env(env).preview_on is expected


def test_preview_setting_must_be_a_boolean():
    from cds_service.errors import ConfigError
    with pytest.raises(ConfigError, match="CDS_PREVIEW"):
        Config.from_env({"CDS_PREVIEW": "perhaps"})


@pytest.mark.parametrize(("jwt", "preview", "served"), [
    (False, None, True), (False, False, False), (True, None, False), (True, True, True)])
def test_page_and_demo_endpoints_are_served_only_when_on(knowledge, jwt, preview, served):
    client = client_for(knowledge, jwt=jwt, preview=preview)
    for path in ("/", "/preview/app.js", "/demo/patients", "/demo/fhir/Patient/dexfree-demo-candidate"):
        answer = client.get(path)
        # Off: an unknown path like any other (with JWT on, refused before it is looked up).
        assert answer.status_code == (200 if served else 401 if jwt else 404), path
        if not served:
            assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_with_jwt_the_hooks_still_need_a_token_and_the_page_knows(knowledge):
    client = client_for(knowledge, jwt=True, preview=True)
    assert client.get("/demo/patients").get_json()["openService"] is False
    assert client.get("/cds-services").status_code == 401
    assert client.post("/cds-services/dex-free-patient-view", json={}).status_code == 401


def test_page_has_a_strict_content_security_policy(client):
    for path in ("/", "/preview/app.js", "/preview/style.css", "/demo/patients"):
        answer = client.get(path)
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/preview/app.js").mimetype in {"text/javascript", "application/javascript"}


def test_page_loads_nothing_from_elsewhere_and_runs_no_inline_code():
    html = (STATIC / "index.html").read_text()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/preview/"), url
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a file
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handler
    assert "<style" not in html and " style=" not in html


def test_card_text_is_never_parsed_as_html():
    """The page's code builds nodes and text; no API that parses markup appears in it."""
    for script in STATIC.glob("*.js"):
        code = script.read_text()
        for api in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                    "DOMParser", "createContextualFragment"):
            assert api not in code, f"{script.name} uses {api}"


def test_demo_fhir_search_answers_one_patients_resources(client):
    bundle = client.get("/demo/fhir/CarePlan?patient=dexfree-demo-b-icaria-c3").get_json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["subject"]["reference"] == "Patient/dexfree-demo-b-icaria-c3"
    assert client.get("/demo/fhir/CarePlan?patient=Patient/dexfree-demo-b-icaria-c3").get_json()["total"] == 1
    assert client.get("/demo/fhir/CarePlan?patient=nobody").get_json() == {
        "resourceType": "Bundle", "type": "searchset", "total": 0}
    ecog = client.get("/demo/fhir/Observation?patient=dexfree-demo-candidate&code=http://loinc.org|89247-1").get_json()
    assert [e["resource"]["id"] for e in ecog["entry"]] == ["dexfree-demo-candidate-ecog"]
    other = client.get("/demo/fhir/Observation?patient=dexfree-demo-candidate&code=http://loinc.org|0000-0").get_json()
    assert other["total"] == 0


@pytest.mark.parametrize(("path", "status"), [
    ("/demo/fhir/Patient/nobody", 404),
    ("/demo/fhir/Encounter?patient=dexfree-demo-candidate", 400),
    ("/demo/fhir/Condition?subject=Patient/dexfree-demo-candidate", 400),
    ("/demo/fhir/Condition?patient=dexfree-demo-candidate&code=x|y", 400),
    ("/demo/fhir/Condition", 400),
    ("/demo/fhir/Condition?patient=a&patient=b", 400),
])
def test_what_the_demo_endpoint_cannot_answer_is_an_operation_outcome(client, path, status):
    answer = client.get(path)
    assert answer.status_code == status
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_catalogue_lists_patients_and_order_choices(client):
    catalogue = client.get("/demo/patients").get_json()
    assert catalogue["today"] == "2026-11-24" and catalogue["openService"] is True
    assert all({"id", "label", "group", "shows"} <= set(p) for p in catalogue["patients"])
    assert catalogue["products"] and catalogue["routes"]
