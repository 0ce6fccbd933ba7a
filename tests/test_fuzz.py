"""Property-based fuzzing (hypothesis, fixed seed, bounded): every input gets a 2xx/4xx JSON answer, never a 500.

Request bodies (arbitrary JSON and bytes, and mutations of the fixture requests: fields dropped, types
swapped, huge strings, deep nesting), FHIR resources in prefetch and draftOrders (valid-shaped and
broken), and Authorization headers against a service that requires JWTs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import string
import sys
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.exceptions import PyJWTError

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.runtime import Runtime
from tests.conftest import FIXED_NOW, load_fixture
from tests.security.tokens import (
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_JWKS,
    SANDBOX_KID,
    claims,
    sandbox_key,
    sign,
)
from tests.spec import check_operation_outcome

# Derandomized (a fixed seed derived from each test), no example database, no per-example deadline:
# the same examples run on every machine, in a few seconds.
FUZZ = settings(max_examples=120, derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

SERVICES = {"order-select": "dex-free-order-select", "order-sign": "dex-free-order-sign",
            "patient-view": "dex-free-patient-view"}
FIXTURES = {"order-select": ["requests/sandbox-order-select.json", "requests/sandbox-order-select-blank.json"],
            "order-sign": ["requests/spec-order-sign.json"], "patient-view": ["requests/spec-patient-view.json"]}
ENDPOINTS = [f"/cds-services/{s}" for s in SERVICES.values()] + \
            [f"/cds-services/{s}/feedback" for s in SERVICES.values()]


@cache
def open_client():
    return create_app(runtime=Runtime(config=Config(max_body_bytes=256 * 1024), clock=lambda: FIXED_NOW)).test_client()


@contextlib.contextmanager
def production_stack():
    """The stack room a request has in a gunicorn worker (Python's default limit of 1000 frames, ~50
    used by gunicorn and Flask). Hypothesis raises the limit while it runs a test, which would hide
    a RecursionError that deeply nested input causes in production."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 950)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def post(path: str, data: bytes | str, client=None):
    client = client or open_client()
    with production_stack():
        return client.post(path, data=data, content_type="application/json")


def assert_answered(response) -> None:
    """2xx or 4xx, always a JSON body; an error is an OperationOutcome without a stack trace."""
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    body = json.loads(response.get_data(as_text=True))
    if response.status_code >= 400:
        check_operation_outcome(body)
    else:
        assert isinstance(body, dict)


# --- strategies -----------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=25)


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) into a JSON document."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += paths(value, (*prefix, index))
    return found


NESTED = "__nested__"


def nested_text(depth: int, kind: str) -> str:
    opening, closing = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opening * depth + "1" + closing * depth


def swapped(value: Any) -> Any:
    """The same information in the wrong JSON type."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return {"0": value[0]} if value else {}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated_requests(draw) -> tuple[str, str]:
    """A fixture request with a few mutations; returns its service path and its JSON text."""
    hook = draw(st.sampled_from(sorted(FIXTURES)))
    doc = load_fixture(draw(st.sampled_from(FIXTURES[hook])))
    nested: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(doc)
        # Half of the mutations land inside the resources that get parsed (the fixtures' prefetch
        # searches are empty Bundles): the patient and the draft orders.
        in_data = [p for p in candidates
                   if p[:2] == ("prefetch", "patient") or p[:3] == ("context", "draftOrders", "entry")]
        if draw(st.booleans()) and in_data:
            candidates = in_data
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["drop", "swap", "replace", "huge", "nested", "null", "empty"]))
        if action == "drop":
            del parent[last]
        elif action == "swap":
            parent[last] = swapped(parent[last])
        elif action == "replace":
            parent[last] = draw(json_values)
        elif action == "huge":
            parent[last] = draw(st.sampled_from(string.printable)) * draw(st.sampled_from([10_000, 100_000]))
        elif action == "nested":
            marker = f"{NESTED}{len(nested)}"
            nested[marker] = nested_text(draw(st.sampled_from([50, 600, 2000])),
                                         draw(st.sampled_from(["list", "dict"])))
            parent[last] = marker
        elif action == "null":
            parent[last] = None
        else:
            parent[last] = draw(st.sampled_from(["", [], {}]))
    text = json.dumps(doc)
    for marker, replacement in nested.items():
        text = text.replace(json.dumps(marker), replacement)
    return f"/cds-services/{SERVICES[hook]}", text


RESOURCE_TYPES = ["Patient", "Condition", "MedicationRequest", "MedicationAdministration", "MedicationStatement",
                  "Observation", "Procedure", "ResearchSubject", "CarePlan", "Medication", "Bundle",
                  "OperationOutcome", "NotAType", ""]
ELEMENTS = ["id", "status", "intent", "subject", "patient", "code", "category", "reasonCode", "birthDate", "gender",
            "name", "identifier", "valueQuantity", "valueInteger", "effectiveDateTime", "authoredOn", "period",
            "medicationCodeableConcept", "medicationReference", "dosageInstruction", "basedOn", "entry", "type",
            "study", "assignedArm", "actualArm", "activity", "extension", "meta", "contained", "text"]
codings = st.fixed_dictionaries({"system": st.sampled_from(["http://www.nlm.nih.gov/research/umls/rxnorm",
                                                            "http://snomed.info/sct", "http://loinc.org", ""]),
                                 "code": st.sampled_from(["197582", "109989006", "89247-1", "", "x"])})
element_values = (json_values | st.builds(lambda c: {"coding": [c]}, codings)
                  | st.builds(lambda c: [{"coding": [c]}], codings)
                  | st.sampled_from(["2026-11-24", "2026-11-24T09:30:00Z", "draft", "active", "order",
                                     "Patient/pat-1", {"reference": "Patient/pat-1"}, {"start": "2026-01-01"}]))


@st.composite
def resources(draw, depth: int = 0) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": draw(st.sampled_from(RESOURCE_TYPES))}
    for name in draw(st.lists(st.sampled_from(ELEMENTS), max_size=6, unique=True)):
        resource[name] = draw(element_values)
    if resource["resourceType"] == "Bundle" and depth < 2:
        entries = [{"resource": r} if draw(st.booleans()) else r
                   for r in draw(st.lists(resources(depth + 1), max_size=3))]
        resource["entry"] = draw(st.just(entries) | json_values)
    return resource


# --- properties -------------------------------------------------------------------------------------------

@FUZZ
@given(path=st.sampled_from(ENDPOINTS), body=json_values)
def test_any_json_body_is_answered(path, body):
    assert_answered(post(path, json.dumps(body)))


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), data=st.binary(max_size=300))
@example(path=ENDPOINTS[0], data=b'{"hook": "\xff\xfe"}')
@example(path=ENDPOINTS[0], data=b"\xef\xbb\xbf{}")
def test_any_bytes_are_answered(path, data):
    assert_answered(post(path, data))


@FUZZ
@given(request=mutated_requests())
def test_mutated_fixture_requests_are_answered(request):
    path, text = request
    assert_answered(post(path, text))


def _nested_in(fixture: str, where: tuple, depth: int, kind: str = "list") -> tuple[str, str]:
    doc = load_fixture(fixture)
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = NESTED
    return json.dumps(doc).replace(json.dumps(NESTED), nested_text(depth, kind))


# What the fuzzing found, kept as plain regression tests (the fixes are in hooks/request.py).
FOUND = {
    # A resource nested a few hundred levels deep exhausted the worker's stack while it was repaired
    # (copy.deepcopy): a 500. Now refused up front, as any body nested deeper than MAX_JSON_DEPTH.
    "nested patient name": (_nested_in("requests/spec-order-sign.json", ("prefetch", "patient", "name"), 600), 413),
    "nested draft order element": (_nested_in("requests/spec-order-sign.json",
                                              ("context", "draftOrders", "entry", 0, "resource", "vendorX"), 600,
                                              "dict"), 413),
    # Bundle.entry that is not an array was iterated: a 500 (TypeError). Now a 400 naming the field.
    "draftOrders.entry true": (_nested_in("requests/spec-order-sign.json", ("context", "draftOrders", "entry"), 0)
                               .replace('"entry": 1', '"entry": true'), 400),
    # A resource containing a resource of an unknown type: fhir_core raised KeyError, not a validation
    # error, and the call was a 500. Now that resource is skipped like any other unreadable one.
    "contained resource of no known type": (_nested_in("requests/spec-order-sign.json",
                                                       ("context", "draftOrders", "entry", 0, "resource", "contained"),
                                                       0).replace('"contained": 1',
                                                                  '"contained": [{"resourceType": "NotAType"}]'), 200),
    "prefetch Bundle.entry 5": (_nested_in("requests/spec-order-sign.json", ("prefetch", "carePlans", "entry"), 0)
                                .replace('"entry": 1', '"entry": 5'), 400),
}


@pytest.mark.parametrize("case", FOUND)
def test_what_fuzzing_found_stays_fixed(case):
    text, status = FOUND[case]
    response = post("/cds-services/dex-free-order-sign", text)
    assert response.status_code == status
    if status == 200:
        return
    issue = check_operation_outcome(response.get_json())
    assert ("nested deeper" in issue["diagnostics"]) if status == 413 else (issue["expression"][0].endswith(".entry"))


def test_realistic_nesting_is_accepted():
    # A patient with an extension inside an extension inside a contained resource: well under the limit.
    doc = load_fixture("requests/spec-order-sign.json")
    inner = {"url": "http://example.org/inner", "valueCodeableConcept": {"coding": [{"system": "s", "code": "c"}]}}
    doc["prefetch"]["patient"]["extension"] = [{"url": "http://example.org/outer", "extension": [inner] * 3}]
    assert post("/cds-services/dex-free-order-sign", json.dumps(doc)).status_code == 200


@FUZZ
@given(hook=st.sampled_from(sorted(FIXTURES)), prefetch=st.dictionaries(
    st.sampled_from(["patient", "conditions", "medicationRequests", "medicationAdministrations", "observations",
                     "researchSubjects", "carePlans", "procedures", "unknownKey"]),
    resources() | st.none(), max_size=6), orders=st.lists(resources(), max_size=3),
    odd_entry=st.none() | json_values)
@example(hook="order-select", prefetch={}, orders=[], odd_entry=True)  # found: draftOrders.entry not an array
@example(hook="order-sign", prefetch={"carePlans": {"resourceType": "Bundle", "entry": 5}}, orders=[],
         odd_entry=None)  # found: a prefetch Bundle whose entry is not an array
@example(hook="order-select", prefetch={}, odd_entry=None, orders=[
    {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "NotAType"}}]}])  # found: KeyError
def test_fhir_resources_in_prefetch_and_draft_orders_are_answered(hook, prefetch, orders, odd_entry):
    body = load_fixture(FIXTURES[hook][0])
    body.pop("fhirServer", None)
    body.pop("fhirAuthorization", None)
    body["prefetch"].update(prefetch)
    if "draftOrders" in body["context"]:
        body["context"]["draftOrders"]["entry"] += [{"resource": r} for r in orders]
        if odd_entry is not None:
            body["context"]["draftOrders"]["entry"] = odd_entry
    assert_answered(post(f"/cds-services/{SERVICES[hook]}", json.dumps(body)))


@FUZZ
@given(feedback=st.lists(st.fixed_dictionaries({}, optional={
    "card": json_values | st.text(), "outcome": st.sampled_from(["accepted", "overridden", "x"]) | json_values,
    "outcomeTimestamp": st.sampled_from(["2026-11-24T09:30:00Z", "2026-11-24", "2026-13-45T99:99:99Z",
                                         "2026-11-24T09:30:00+25:00", "9999-12-31T23:59:59-23:59"]) | json_values,
    "acceptedSuggestions": json_values, "overrideReason": json_values | st.fixed_dictionaries(
        {}, optional={"reason": json_values, "userComment": json_values})}), max_size=4))
def test_feedback_bodies_are_answered(feedback):
    assert_answered(post("/cds-services/dex-free-order-sign/feedback", json.dumps({"feedback": feedback})))


# --- Authorization headers against a closed service -------------------------------------------------------

@cache
def closed_client(folder: str):
    import shutil
    from pathlib import Path

    from cds_service.security.jwt_auth import build_authenticator

    shutil.copy(SANDBOX_JWKS, Path(folder) / "sandbox-jwks.json")
    issuers = Path(folder) / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": SANDBOX_ISS, "jwks_file": "sandbox-jwks.json",
                                                "jku": [SANDBOX_JKU]}]}))
    config = Config(jwt_issuers=issuers, replay_db=":memory:", workers=1)
    runtime = Runtime(config=config, authenticator=build_authenticator(config), clock=lambda: FIXED_NOW)
    return create_app(runtime=runtime).test_client()


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


header_values = st.fixed_dictionaries({}, optional={
    "alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES512", ""]) | json_values,
    "kid": st.just(SANDBOX_KID) | json_values, "typ": st.just("JWT") | json_values,
    "jku": st.just(SANDBOX_JKU) | json_values, "crit": json_values})
claim_values = st.fixed_dictionaries({}, optional={
    "iss": st.just(SANDBOX_ISS) | json_values, "aud": st.just("http://localhost/cds-services") | json_values,
    "exp": st.integers() | json_values, "iat": st.integers() | json_values, "nbf": json_values,
    "jti": st.text(max_size=300) | json_values, "tenant": json_values})


@FUZZ
@given(authorization=st.text(max_size=200) | st.builds(lambda h, c, s: f"Bearer {b64(h)}.{b64(c)}.{b64(s)}",
                                                        header_values | json_values, claim_values | json_values,
                                                        st.binary(max_size=120)))
def test_any_authorization_header_is_a_401_never_a_crash(tmp_path_factory, authorization):
    client = closed_client(str(tmp_path_factory.getbasetemp()))
    try:
        response = client.get("/cds-services", headers={"Authorization": authorization})
    except ValueError:
        return  # not a header value at all (a newline, a non-Latin-1 character): no HTTP client sends it
    assert response.status_code == 401
    check_operation_outcome(response.get_json())


@FUZZ
@given(header=header_values, extra=claim_values)
@example(header={}, extra={"exp": 10**400})  # found in review: float(exp) overflowed after PyJWT accepted it
def test_signed_tokens_with_odd_headers_and_claims_are_answered(tmp_path_factory, header, extra):
    # Correctly signed by the Sandbox key, so the checks after the signature are reached too.
    client = closed_client(str(tmp_path_factory.getbasetemp()))
    payload = claims("http://localhost/cds-services") | extra
    headers = {k: v for k, v in header.items() if k != "alg"}
    try:
        token = sign(sandbox_key(), payload, **headers)
    except (TypeError, ValueError, PyJWTError):
        return  # PyJWT will not encode it
    response = client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401)
    json.loads(response.get_data(as_text=True))
