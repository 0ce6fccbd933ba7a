"""No token or patient data in any log line: a representative run with planted secrets, every line scanned."""

from __future__ import annotations

import json
import logging

import pytest

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.hooks.registry import Registry, ServiceDefinition
from cds_service.runtime import Runtime
from cds_service.security.jwt_auth import build_authenticator
from cds_service.security.pseudonym import pseudonym, pseudonymizer
from tests.conftest import FIXED_NOW
from tests.security.conftest import SpyAudit, issuers_file  # noqa: F401 - fixture
from tests.security.planted import (
    ACCESS_TOKEN,
    BIRTH_DATE,
    FAMILY,
    IDENTIFIER,
    PATIENT_ID,
    leaks,
    planted_request,
    record_text,
)
from tests.security.tokens import EHR_ISS, claims, made_key, sandbox_key, sandbox_token, sign

BASE = "http://localhost"
SALT = "test-salt-for-pseudonyms"
# HMAC-SHA256(SALT, PATIENT_ID)[:16], worked out once outside the service: the oracle is not the code under test.
PATIENT_KEY = "3b27fbde08b39657"
SERVICES = {"order-select": "dex-free-order-select", "order-sign": "dex-free-order-sign",
            "patient-view": "dex-free-patient-view"}


def app_with(issuers, registry=None, **settings):
    config = Config(jwt_issuers=issuers, replay_db=":memory:", workers=1, pseudonym_salt=SALT, **settings)
    runtime = Runtime(config=config, authenticator=build_authenticator(config), audit=SpyAudit(),
                      clock=lambda: FIXED_NOW, pseudonymize=pseudonymizer(SALT),
                      **({"registry": registry} if registry else {}))
    return create_app(runtime=runtime).test_client()


class Run:
    """Calls with fresh valid tokens, remembering every token sent so the scan can look for it."""

    def __init__(self, client):
        self.client = client
        self.tokens: list[str] = []
        self.statuses: list[int] = []

    def token(self, path):
        token = sandbox_token(BASE + path)
        self.tokens.append(token)
        return token

    def post(self, path, body, token=None, raw=None, content_type="application/json"):
        token = token or self.token(path)
        self.tokens.append(token)
        data = raw if raw is not None else json.dumps(body)
        response = self.client.post(path, data=data, content_type=content_type,
                                    headers={"Authorization": f"Bearer {token}"})
        self.statuses.append(response.status_code)
        return response


def explode_with_phi(call):
    # A bug whose exception message quotes patient data: the message must not reach the log.
    patient = call.record.patient
    raise ValueError(f"cannot handle {patient.name[0].family} born {patient.birthDate} ({PATIENT_ID}, {IDENTIFIER})")


def test_a_representative_run_logs_no_secret(issuers_file, caplog):  # noqa: F811 - fixture
    caplog.set_level(logging.DEBUG)
    run = Run(app_with(issuers_file))
    sign_path = "/cds-services/dex-free-order-sign"

    # Successes, every service.
    for hook, service in SERVICES.items():
        assert run.post(f"/cds-services/{service}", planted_request(hook)).status_code == 200
    assert run.post(sign_path + "/feedback", {"feedback": [{
        "card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-24T09:31:00Z",
        "overrideReason": {"userComment": f"{FAMILY} said no, born {BIRTH_DATE}"}}]}).status_code == 200

    # Every error class a client can cause.
    wrong_hook = planted_request("order-sign")
    assert run.post("/cds-services/dex-free-patient-view", wrong_hook).status_code == 400
    bad_token_type = planted_request("order-sign")
    bad_token_type["fhirAuthorization"]["token_type"] = ACCESS_TOKEN
    assert run.post(sign_path, bad_token_type).status_code == 400
    assert run.post(sign_path, None, raw=json.dumps(planted_request("order-sign"))[:-20]).status_code == 400
    assert run.post("/cds-services/no-such-service", planted_request("order-sign")).status_code == 404
    assert run.client.put(sign_path, headers={"Authorization": f"Bearer {run.token(sign_path)}"}).status_code == 405
    missing = planted_request("order-sign")
    del missing["prefetch"]["researchSubjects"]
    del missing["fhirServer"], missing["fhirAuthorization"]
    assert run.post(sign_path, missing).status_code == 412
    assert run.post(sign_path, planted_request("order-sign"), content_type="text/plain").status_code == 415
    big = planted_request("order-sign")
    big["padding"] = FAMILY * 200_000
    assert run.post(sign_path, big).status_code == 413
    many = planted_request("order-sign")
    many["prefetch"]["conditions"]["entry"] *= 6000
    assert run.post(sign_path, many).status_code == 413

    # JWT failures, each carrying the planted request.
    other = made_key("ES384", sandbox_key().kid)
    refused = [
        sign(other, claims(BASE + sign_path)),  # wrong key
        sandbox_token(BASE + "/elsewhere"),  # wrong aud
        sandbox_token(BASE + sign_path, iat=1_000_000_000),  # expired
        sign(made_key("RS384", "rsa-1"), claims(BASE + sign_path, iss=EHR_ISS, tenant="site-z")),
        "not-a-jwt-" + ACCESS_TOKEN,
    ]
    replayed = run.token(sign_path)
    assert run.post(sign_path, planted_request("order-sign"), token=replayed).status_code == 200
    for token in [*refused, replayed]:
        assert run.post(sign_path, planted_request("order-sign"), token=token).status_code == 401

    # A 500.
    broken = ServiceDefinition(id="dex-free-order-sign", hook="order-sign", title="t", description="d",
                               prefetch={}, evaluate=explode_with_phi, needs=("patient",))
    run.client = app_with(issuers_file, registry=Registry([broken]))
    assert run.post(sign_path, planted_request("order-sign")).status_code == 500

    assert {400, 401, 404, 412, 413, 415, 500} <= set(run.statuses)
    assert len(caplog.records) > 40
    for record in caplog.records:
        text = record_text(record)
        assert not leaks(text, run.tokens + refused), (leaks(text, run.tokens + refused), text[:500])

    # The log stays useful: the 500 has its traceback (frames, not messages), calls have a patient key.
    errors = [r for r in caplog.records if r.exc_info]
    assert errors and "explode_with_phi" in record_text(errors[0])
    keys = {r.fields.get("patientKey") for r in caplog.records if r.getMessage() == "request"} - {None}
    assert keys == {PATIENT_KEY}
    reasons = {r.fields.get("error") for r in caplog.records if r.getMessage() == "request"
               and r.fields["status"] == 401}
    assert reasons == {"bad_signature", "wrong_aud", "expired", "tenant_not_allowed", "malformed_token", "replayed"}


@pytest.mark.parametrize("salt", [None, "configured"])
def test_the_patient_key_is_salted_and_stable(salt):
    key = pseudonymizer(salt)
    # Stable: another pseudonymizer of the same salt (None: the process's own) gives the same key.
    assert pseudonymizer(salt)(PATIENT_ID) == key(PATIENT_ID) != key(PATIENT_ID + "x")
    assert PATIENT_ID not in key(PATIENT_ID) and len(key(PATIENT_ID)) == 16
    assert pseudonymizer("other")(PATIENT_ID) != key(PATIENT_ID)
    if salt:
        assert key(PATIENT_ID) == pseudonym(PATIENT_ID, salt) == "24205be303c26cf9"  # HMAC worked out by hand
    else:
        # Unset, the salt is drawn per process: the key is not the one of a guessable salt such as "".
        assert key(PATIENT_ID) not in (pseudonym(PATIENT_ID, ""), pseudonym(PATIENT_ID, "None"))
