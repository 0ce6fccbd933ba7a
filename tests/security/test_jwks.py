"""Key sets: parsing, pinned files, and fetching over real HTTP (cache, refresh, rate limit, no redirects)."""

from __future__ import annotations

import json

import pytest

from cds_service.config import Config
from cds_service.security import jwks as jwks_module
from cds_service.security.caller import Caller
from cds_service.security.jwks import JwksError, RemoteKeys, check_key_url, load_jwks_file, parse_jwks
from cds_service.security.jwt_auth import build_authenticator
from tests.security.http_stub import http_stub
from tests.security.tokens import SANDBOX_JWKS, SANDBOX_KID, claims, jwks, made_key, sign, write_issuers


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def serve_jwks(stub, path, *keys):
    stub.routes[path] = (200, {"Content-Type": "application/json"}, json.dumps(jwks(*keys)).encode())


# --- parsing ------------------------------------------------------------------------------------------

def test_the_sandbox_jwks_has_its_es384_key():
    keys = load_jwks_file(SANDBOX_JWKS)
    assert keys.key(SANDBOX_KID, "ES384") is not None
    assert keys.key(SANDBOX_KID, "ES256") is None  # a P-384 key cannot verify ES256
    assert keys.key(SANDBOX_KID, "RS384") is None
    assert keys.key("other", "ES384") is None


def test_an_rsa_key_without_alg_serves_rs256_and_rs384():
    key = made_key("RS384", "rsa-1")
    jwk = {k: v for k, v in key.jwk.items() if k != "alg"}
    keys = jwks_module.PinnedKeys(parse_jwks({"keys": [jwk]}), "test")
    assert keys.key("rsa-1", "RS256") is not None and keys.key("rsa-1", "RS384") is not None
    assert keys.key("rsa-1", "ES384") is None


@pytest.mark.parametrize(("document", "message"), [
    ([], "not a JWKS"),
    ({"keys": {}}, "not a JWKS"),
    ({"keys": []}, "no usable signing key"),
    ({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}, "private or symmetric"),
    ({"keys": [{"kty": "EC", "crv": "P-521", "kid": "e", "x": "AA", "y": "AA"}]}, "no usable signing key"),
    ({"keys": [{"kty": "EC", "crv": "P-384", "kid": "e", "x": "AA", "y": "AA"}]}, "no usable signing key"),
])
def test_unusable_key_sets_are_refused(document, message):
    with pytest.raises(JwksError, match=message):
        parse_jwks(document)


def test_a_private_key_in_a_jwks_is_refused():
    from jwt.algorithms import ECAlgorithm

    private = json.loads(ECAlgorithm.to_jwk(made_key("ES384", "p").private))
    with pytest.raises(JwksError, match="private"):
        parse_jwks({"keys": [{**private, "kid": "p"}]})


def test_keys_that_cannot_sign_for_us_are_left_out():
    good = made_key("ES384", "good")
    weak = made_key("RS256", "weak", bits=1024)
    keys = parse_jwks({"keys": [good.jwk, weak.jwk, {**made_key("ES256", "enc").jwk, "use": "enc"},
                                {k: v for k, v in made_key("ES256", "nokid").jwk.items() if k != "kid"},
                                "not an object"]})
    assert set(keys) == {"good"}


@pytest.mark.parametrize(("url", "ok"), [
    ("https://sandbox.cds-hooks.org/.well-known/jwks.json", True),
    ("http://127.0.0.1:8000/jwks", True),
    ("http://localhost/jwks", True),
    ("http://ehr.example.org/jwks", False),
    ("https://user:pw@ehr.example.org/jwks", False),
    ("ftp://ehr.example.org/jwks", False),
    ("/relative/jwks", False),
])
def test_key_urls_must_be_https_except_on_loopback(url, ok):
    assert (check_key_url(url) is None) == ok


# --- fetching over HTTP ---------------------------------------------------------------------------

def test_keys_are_fetched_once_and_cached():
    key = made_key("ES384", "k1")
    with http_stub() as stub:
        serve_jwks(stub, "/jwks", key)
        remote = RemoteKeys(stub.base + "/jwks", clock=Clock())
        assert remote.key("k1", "ES384") is not None
        assert remote.key("k1", "ES384") is not None
        assert stub.hits("/jwks") == 1


def test_an_unknown_kid_refreshes_the_keys_but_not_more_than_once_per_interval():
    old, new = made_key("ES384", "old"), made_key("ES384", "new")
    clock = Clock()
    with http_stub() as stub:
        serve_jwks(stub, "/jwks", old)
        remote = RemoteKeys(stub.base + "/jwks", clock=clock, refresh_min_seconds=30)
        assert remote.key("old", "ES384") is not None
        serve_jwks(stub, "/jwks", old, new)  # the issuer rotates
        clock.now += 31
        assert remote.key("new", "ES384") is not None
        assert stub.hits("/jwks") == 2
        # A stream of made-up kids: no fetch until the interval has passed again.
        for _ in range(20):
            assert remote.key("made-up", "ES384") is None
        assert stub.hits("/jwks") == 2
        clock.now += 31
        assert remote.key("made-up", "ES384") is None
        assert stub.hits("/jwks") == 3


def test_keys_are_reread_when_old_so_a_withdrawn_key_stops_working():
    key = made_key("ES384", "k1")
    clock = Clock()
    with http_stub() as stub:
        serve_jwks(stub, "/jwks", key)
        remote = RemoteKeys(stub.base + "/jwks", clock=clock, max_age_seconds=3600)
        assert remote.key("k1", "ES384") is not None
        serve_jwks(stub, "/jwks", made_key("ES384", "k2"))
        clock.now += 3601
        assert remote.key("k1", "ES384") is None


def test_a_failed_refresh_keeps_the_known_keys():
    key = made_key("ES384", "k1")
    clock = Clock()
    with http_stub() as stub:
        serve_jwks(stub, "/jwks", key)
        remote = RemoteKeys(stub.base + "/jwks", clock=clock)
        assert remote.key("k1", "ES384") is not None
        stub.routes["/jwks"] = (500, {}, b"down")
        clock.now += 4000
        assert remote.key("k1", "ES384") is not None
        assert stub.hits("/jwks") == 2


@pytest.mark.parametrize(("route", "message"), [
    ((302, {"Location": "/elsewhere"}, b""), "redirect"),
    ((301, {"Location": "https://evil.example.org/jwks"}, b""), "redirect"),
    ((500, {}, b"error"), "HTTP 500"),
    ((200, {}, b"<html>not json</html>"), "not JSON"),
    ((200, {}, b'{"keys": []}'), "no usable"),
    ((200, {}, b" " * (jwks_module.MAX_JWKS_BYTES + 10)), "larger than"),
])
def test_a_bad_answer_is_an_error_and_redirects_are_not_followed(route, message, caplog):
    with http_stub() as stub:
        stub.routes["/jwks"] = route
        serve_jwks(stub, "/elsewhere", made_key("ES384", "k1"))
        remote = RemoteKeys(stub.base + "/jwks", clock=Clock())
        with pytest.raises(JwksError, match="could not be fetched"):
            remote.key("k1", "ES384")
        assert stub.hits("/elsewhere") == 0
    assert any(message in r.fields.get("reason", "") for r in caplog.records if hasattr(r, "fields"))


def test_a_key_server_that_never_answers_times_out(monkeypatch):
    monkeypatch.setattr(jwks_module, "FETCH_TIMEOUT", (0.5, 0.2))
    with http_stub() as stub:
        stub.hang.add("/jwks")
        remote = RemoteKeys(stub.base + "/jwks", clock=Clock())
        with pytest.raises(JwksError):
            remote.key("k1", "ES384")


def test_nothing_listens_there(monkeypatch):
    from tests.servers import free_port

    remote = RemoteKeys(f"http://127.0.0.1:{free_port()}/jwks", clock=Clock())
    with pytest.raises(JwksError):
        remote.key("k1", "ES384")


# --- an issuer whose keys are fetched ---------------------------------------------------------------

ISS = "https://ehr.example.org/fetched"


def fetched_issuer_app(tmp_path, stub):
    from cds_service.app import create_app
    from cds_service.runtime import Runtime

    path = write_issuers(tmp_path, [{"iss": ISS, "jwks_url": stub.base + "/own",
                                     "jku": [stub.base + "/rotated"]}], {})
    config = Config(jwt_issuers=path, replay_db=":memory:", workers=1)
    return create_app(runtime=Runtime(config=config, authenticator=build_authenticator(config))).test_client()


def test_keys_come_from_the_jwks_url_or_an_allowlisted_jku_and_nothing_else(tmp_path):
    own, rotated = made_key("RS384", "own-1"), made_key("ES384", "rot-1")
    aud = "http://localhost/cds-services"
    with http_stub() as stub:
        serve_jwks(stub, "/own", own)
        serve_jwks(stub, "/rotated", rotated)
        serve_jwks(stub, "/evil", rotated)
        client = fetched_issuer_app(tmp_path, stub)
        auth = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
        assert client.get("/cds-services", headers=auth(sign(own, claims(aud, iss=ISS)))).status_code == 200
        token = sign(rotated, claims(aud, iss=ISS), jku=stub.base + "/rotated")
        assert client.get("/cds-services", headers=auth(token)).status_code == 200
        token = sign(rotated, claims(aud, iss=ISS), jku=stub.base + "/evil")
        assert client.get("/cds-services", headers=auth(token)).status_code == 401
        # The jku named in a token is fetched only when the operator listed it.
        assert (stub.hits("/own"), stub.hits("/rotated"), stub.hits("/evil")) == (1, 1, 0)
        # A key from one key set does not verify through another.
        token = sign(rotated, claims(aud, iss=ISS), jku=stub.base + "/own")
        assert client.get("/cds-services", headers=auth(token)).status_code == 401


def test_keys_that_cannot_be_fetched_are_a_503_not_a_crash(tmp_path):
    key = made_key("RS384", "own-1")
    with http_stub() as stub:
        stub.routes["/own"] = (503, {}, b"maintenance")
        client = fetched_issuer_app(tmp_path, stub)
        token = sign(key, claims("http://localhost/cds-services", iss=ISS))
        response = client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_the_caller_of_a_fetched_issuer_has_no_tenant(tmp_path):
    from cds_service.security.issuers import load_issuers
    from cds_service.security.jwt_auth import JwtAuthenticator
    from cds_service.security.replay import MemoryReplayStore

    key = made_key("RS384", "own-1")
    with http_stub() as stub:
        serve_jwks(stub, "/own", key)
        path = write_issuers(tmp_path, [{"iss": ISS, "jwks_url": stub.base + "/own"}], {})
        authenticate = JwtAuthenticator(load_issuers(path), MemoryReplayStore(), 30)
        aud = "https://cds.example.org/cds-services"
        assert authenticate(f"Bearer {sign(key, claims(aud, iss=ISS))}", aud) == Caller(issuer=ISS)
