"""JWT client authentication through the app: the Sandbox's tokens pass, every bad token is a bare 401."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import der_to_raw_signature

from cds_service.security.caller import Caller
from tests.conftest import load_fixture
from tests.security.conftest import ehr_keys, jwt_app
from tests.security.tokens import (
    EHR_ISS,
    SANDBOX_ISS,
    SANDBOX_JKU,
    SANDBOX_KID,
    b64,
    claims,
    hmac_token,
    made_key,
    raw_token,
    sandbox_key,
    sandbox_token,
    sign,
)
from tests.spec import check_operation_outcome

BASE = "http://localhost"
DISCOVERY = "/cds-services"
SIGN = "/cds-services/dex-free-order-sign"
FEEDBACK = "/cds-services/dex-free-order-sign/feedback"
FEEDBACK_BODY = {"feedback": [{"card": "4e0a3a1e-3283-4575-ab82-028d55fe2719", "outcome": "overridden",
                               "outcomeTimestamp": "2026-11-24T09:31:00Z"}]}


def call(client, path, token=None, authorization=None, **kwargs):
    headers = {"Authorization": authorization or f"Bearer {token}"} if (token or authorization) else {}
    if path == DISCOVERY:
        return client.get(path, headers=headers)
    body = FEEDBACK_BODY if path == FEEDBACK else load_fixture("requests/spec-order-sign.json")
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def assert_refused(response, caplog=None, reason=None, token=None):
    """A 401 that says nothing but Unauthorized; the log has the reason code and never the token."""
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    issue = check_operation_outcome(response.get_json())
    assert issue["diagnostics"] == "Unauthorized" and issue["code"] == "login"
    if caplog is not None:
        request_logs = [r.fields for r in caplog.records if r.getMessage() == "request"]
        assert request_logs and request_logs[-1]["status"] == 401
        if reason:
            assert request_logs[-1]["error"] == reason
        if token:
            for record in caplog.records:
                assert token not in record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
            for part in token.split(".")[:2]:
                assert part not in caplog.text


# --- what passes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [DISCOVERY, SIGN, FEEDBACK])
def test_a_sandbox_token_passes_on_every_endpoint(client, audit, path):
    response = call(client, path, sandbox_token(BASE + path))
    assert response.status_code == 200, response.get_json()
    if path != DISCOVERY:
        assert audit.callers == [Caller(issuer=SANDBOX_ISS, tenant=None)]


def test_the_sandbox_token_is_exactly_what_the_sandbox_signs():
    token = sandbox_token(BASE + DISCOVERY)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES384", "typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JKU}
    body = jwt.decode(token, options={"verify_signature": False})
    assert set(body) == {"iss", "aud", "exp", "iat", "jti"} and body["exp"] == body["iat"] + 300


def test_an_epic_like_rs384_token_with_sub_nbf_and_tenant_passes(client, audit):
    rsa_key, _ = ehr_keys()
    token = sign(rsa_key, claims(BASE + SIGN, iss=EHR_ISS, sub="client-id-123", nbf=int(time.time()) - 5,
                                 tenant="site-b"))
    assert call(client, SIGN, token).status_code == 200
    assert audit.callers == [Caller(issuer=EHR_ISS, tenant="site-b")]


def test_an_es256_token_passes(client):
    _, ec_key = ehr_keys()
    assert call(client, DISCOVERY, sign(ec_key, claims(BASE + DISCOVERY, iss=EHR_ISS, tenant="site-a"))).status_code == 200


def test_expiry_within_the_leeway_passes(client):
    now = int(time.time())
    token = sandbox_token(BASE + DISCOVERY, iat=now - 310)  # expired 10 s ago; leeway 30 s
    assert call(client, DISCOVERY, token).status_code == 200


def test_the_scheme_name_is_case_insensitive(client):
    assert call(client, DISCOVERY, authorization="bearer " + sandbox_token(BASE + DISCOVERY)).status_code == 200


def test_preflight_and_healthz_need_no_token(client):
    preflight = client.options(SIGN, headers={"Origin": "https://sandbox.cds-hooks.org",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    health = client.get("/healthz").get_json()
    assert health["features"]["authentication"] == "jwt (2 issuer(s); replay store: memory)"


def test_behind_a_proxy_aud_is_the_public_url(issuers_file):
    client = jwt_app(issuers_file, base_url="https://cds.example.org/dexfree/").test_client()
    public = "https://cds.example.org/dexfree" + DISCOVERY
    assert call(client, DISCOVERY, sandbox_token(public)).status_code == 200
    assert call(client, DISCOVERY, sandbox_token(BASE + DISCOVERY)).status_code == 401


# --- each of these is a 401 without detail -----------------------------------------------------------

def _forged(aud):
    # A valid token whose claims were changed after signing (here: another issuer's tenant claim added).
    header, payload, signature = sandbox_token(aud).split(".")
    changed = json.loads(jwt.utils.base64url_decode(payload)) | {"tenant": "someone-else", "jti": "forged"}
    return f"{header}.{b64(json.dumps(changed).encode())}.{signature}"


def _wrong_key(aud):
    # Signed with another P-384 key that claims the Sandbox's kid.
    impostor = made_key("ES384", SANDBOX_KID + "-impostor")
    return sign(impostor, claims(aud), kid=SANDBOX_KID, jku=SANDBOX_JKU)


def _alg_none(aud):
    return raw_token({"alg": "none", "typ": "JWT", "kid": SANDBOX_KID}, claims(aud))


def _hs256_with_public_key(aud):
    # Algorithm confusion: the verifier's public key used as an HMAC secret.
    pem = sandbox_key().public_pem
    return hmac_token(pem, {"alg": "HS256", "typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JKU}, claims(aud))


def _hs256_with_public_jwk(aud):
    secret = json.dumps(sandbox_key().jwk).encode()
    return hmac_token(secret, {"alg": "HS256", "typ": "JWT", "kid": SANDBOX_KID}, claims(aud))


def _es384_by_p256(aud):
    # PyJWT will not sign this; a client that gets its curve wrong (or an attacker) might.
    _, p256 = ehr_keys()
    header = b64(json.dumps({"alg": "ES384", "typ": "JWT", "kid": p256.kid}).encode())
    payload = b64(json.dumps(claims(aud, iss=EHR_ISS, tenant="site-a")).encode())
    der = p256.private.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA384()))
    return f"{header}.{payload}.{b64(der_to_raw_signature(der, p256.private.curve))}"


def _unknown_issuer(aud):
    return sign(sandbox_key(), claims(aud, iss="https://evil.example.org"), jku=SANDBOX_JKU)


def _disallowed_jku(aud):
    return sign(sandbox_key(), claims(aud), jku="https://evil.example.org/jwks.json")


def _ehr(aud, **kw):
    rsa_key, _ = ehr_keys()
    return sign(rsa_key, claims(aud, iss=EHR_ISS, **({"tenant": "site-a"} | kw)))


REFUSED = {
    "forged signature": (_forged, "bad_signature"),
    "wrong key": (_wrong_key, "bad_signature"),
    "expired": (lambda aud: sandbox_token(aud, iat=int(time.time()) - 400), "expired"),
    "iat in the future": (lambda aud: sandbox_token(aud, iat=int(time.time()) + 120), "not_yet_valid"),
    "nbf in the future": (lambda aud: sandbox_token(aud, nbf=int(time.time()) + 120), "not_yet_valid"),
    "wrong aud": (lambda aud: sandbox_token("https://other-service.example.org/cds-services"), "wrong_aud"),
    "aud of another endpoint": (lambda aud: sandbox_token(BASE + "/cds-services/dex-free-patient-view"), "wrong_aud"),
    "alg none": (_alg_none, "disallowed_alg"),
    "HS256 with the public key as secret": (_hs256_with_public_key, "disallowed_alg"),
    "HS256 with the public JWK as secret": (_hs256_with_public_jwk, "disallowed_alg"),
    "ES512": (lambda aud: raw_token({"alg": "ES512", "kid": SANDBOX_KID}, claims(aud), b"x" * 132), "disallowed_alg"),
    "PS256": (lambda aud: sign(ehr_keys()[0], claims(aud, iss=EHR_ISS), alg="PS256"), "disallowed_alg"),
    "RS384 header on an EC key": (lambda aud: raw_token({"alg": "RS384", "kid": SANDBOX_KID}, claims(aud), b"x" * 256),
                                  "unknown_key"),
    "ES384 header on a P-256 key": (_es384_by_p256, "unknown_key"),
    "unknown issuer": (_unknown_issuer, "unknown_issuer"),
    "disallowed jku": (_disallowed_jku, "disallowed_jku"),
    "jku on an issuer that allows none": (lambda aud: sign(ehr_keys()[0], claims(aud, iss=EHR_ISS, tenant="site-a"),
                                                           jku="https://ehr.example.org/jwks"), "disallowed_jku"),
    "unknown kid": (lambda aud: sign(sandbox_key(), claims(aud), kid="no-such-kid"), "unknown_key"),
    "no kid": (lambda aud: sign(sandbox_key(), claims(aud), kid=None), "missing_kid"),
    "typ not JWT": (lambda aud: sign(sandbox_key(), claims(aud), typ="at+jwt"), "wrong_typ"),
    "no jti": (lambda aud: sandbox_token(aud, jti=None), "missing_claim"),
    "no exp": (lambda aud: sign(sandbox_key(), {k: v for k, v in claims(aud).items() if k != "exp"}), "missing_claim"),
    "no aud": (lambda aud: sign(sandbox_key(), {k: v for k, v in claims(aud).items() if k != "aud"}), "missing_claim"),
    "lifetime of a day": (lambda aud: sandbox_token(aud, lifetime=86400), "lifetime_too_long"),
    "exp too large for a float": (lambda aud: sandbox_token(aud, exp=10**400), "lifetime_too_long"),
    "exp not a number": (lambda aud: sandbox_token(aud, exp="soon"), "invalid_claims"),
    "jti empty": (lambda aud: sandbox_token(aud, jti=""), "bad_jti"),
    "jti of 257 characters": (lambda aud: sandbox_token(aud, jti="j" * 257), "bad_jti"),
    "tenant not allowed": (lambda aud: _ehr(aud, tenant="site-z"), "tenant_not_allowed"),
    "tenant missing where tenants are listed": (lambda aud: _ehr(aud, tenant=None), "tenant_not_allowed"),
    "tenant not a string": (lambda aud: _ehr(aud, tenant=["site-a"]), "bad_tenant"),
    "not a JWT": (lambda aud: "not-a-jwt", "malformed_token"),
    "two segments": (lambda aud: ".".join(sandbox_token(aud).split(".")[:2]), "malformed_token"),
    "garbage segments": (lambda aud: "eyJhbGciOi.eyJpc3Mi.c2ln", "malformed_token"),
}


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("path", [DISCOVERY, SIGN, FEEDBACK])
def test_bad_token_is_a_bare_401_with_the_reason_in_the_log(client, audit, caplog, case, path):
    make, reason = REFUSED[case]
    token = make(BASE + path)
    with caplog.at_level(logging.INFO):
        response = call(client, path, token)
    assert_refused(response, caplog, reason, token)
    assert audit.callers == []
    # Once the issuer is known, the refusal names it in the log (which client to call about it).
    [refusal] = [r.fields for r in caplog.records if r.getMessage() == "authentication refused"]
    assert refusal["issuer"] == (LOGGED_ISSUER[case] if case in LOGGED_ISSUER else _issuer_of(token))


# Refused before the issuer is looked up (or because it is unknown): no issuer, or the caller's text.
LOGGED_ISSUER = {"alg none": None, "HS256 with the public key as secret": None,
                 "HS256 with the public JWK as secret": None, "ES512": None, "PS256": None, "no kid": None, "typ not JWT": None,
                 "not a JWT": None, "two segments": None, "garbage segments": None,
                 "unknown issuer": "https://evil.example.org"}


def _issuer_of(token):
    return jwt.decode(token, options={"verify_signature": False})["iss"]


def test_a_replayed_token_is_refused(client, caplog):
    token = sandbox_token(BASE + SIGN)
    assert call(client, SIGN, token).status_code == 200
    with caplog.at_level(logging.INFO):
        assert_refused(call(client, SIGN, token), caplog, "replayed", token)


def test_a_refused_token_does_not_burn_its_jti(client):
    # A forged token that reuses a real token's jti must not make the real one look replayed.
    real_claims = claims(BASE + DISCOVERY)
    forged = sign(made_key("ES384", "x"), real_claims, kid=SANDBOX_KID)
    assert call(client, DISCOVERY, forged).status_code == 401
    assert call(client, DISCOVERY, sign(sandbox_key(), real_claims, jku=SANDBOX_JKU)).status_code == 200


def test_the_same_jti_from_two_issuers_is_two_tokens(client):
    rsa_key, _ = ehr_keys()
    shared = claims(BASE + DISCOVERY)
    assert call(client, DISCOVERY, sign(sandbox_key(), shared)).status_code == 200
    ehr = shared | {"iss": EHR_ISS, "tenant": "site-a"}
    assert call(client, DISCOVERY, sign(rsa_key, ehr)).status_code == 200


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc.def.ghi", "Bearer a.b.c extra",
    "Bearer\tabc", "Bearer " + "a" * 20000, "Bearer é.è.à",
])
def test_missing_or_malformed_header_is_a_401(client, caplog, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    with caplog.at_level(logging.INFO):
        response = client.get(DISCOVERY, headers=headers)
    expected = "missing_header" if not (authorization or "").strip() else None
    assert_refused(response, caplog, expected)
    reasons = {r.fields.get("reason") for r in caplog.records if r.getMessage() == "authentication refused"}
    assert reasons <= {"missing_header", "malformed_header", "malformed_token"} and reasons


def test_unknown_paths_need_a_token_too(client):
    assert client.get("/admin").status_code == 401


def test_an_iat_in_the_future_is_refused_whatever_the_pyjwt_version(issuers_file):
    # The authenticator's own clock 10 minutes behind: PyJWT (real clock) accepts the token, our check does not.
    from cds_service.errors import CdsError
    from cds_service.security.issuers import load_issuers
    from cds_service.security.jwt_auth import JwtAuthenticator
    from cds_service.security.replay import MemoryReplayStore

    authenticate = JwtAuthenticator(load_issuers(issuers_file), MemoryReplayStore(), 30,
                                    clock=lambda: time.time() - 600)
    with pytest.raises(CdsError) as refused:
        authenticate(f"Bearer {sandbox_token(BASE + DISCOVERY)}", BASE + DISCOVERY)
    assert (refused.value.status, refused.value.code) == (401, "not_yet_valid")
